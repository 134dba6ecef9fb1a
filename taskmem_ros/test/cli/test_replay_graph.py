"""`taskmem-replay` on the graph: a memorizer that is gone is a failure, not a success."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros


def test_exit_is_non_zero_when_no_memorizer_answers_the_flush(small_bag: tuple[Path, object]) -> None:
    cmd = [sys.executable, "-m", "taskmem_ros.cli.replay", str(small_bag[0]), "--rate", "50"]
    cmd += ["--wait-subscribers", "0.5", "--ack-timeout", "1", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "is the memorizer running?" in done.stderr and "Traceback" not in done.stderr
    stats = json.loads(done.stdout)
    assert stats["flush"] is None and stats["published"] > 0 and stats["bag_complete"] is True

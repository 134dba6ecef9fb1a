"""The executables the launch file starts (`memorizer_node`, `task_node`), each its own process,
activated by their `autostart` parameter as they would be without a lifecycle manager."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros


def test_executables_autostart_and_serve(tmp_path: Path) -> None:
    from graph_client import GraphClient

    url = f"sqlite:///{tmp_path / 'm.db'}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"taskmem_ros.nodes.{name}",
                "--ros-args",
                "-p",
                "autostart:=true",
                "-p",
                f"store.url:={url}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("memorizer_node", "task_node")
    ]
    client = GraphClient("standalone_probe")
    try:
        stats = client.trigger("/memorizer/get_stats")
        assert stats["clips_memorized"] == 0 and stats["frames_rejected"] == 0
        resp = client.query("anything")
        assert resp.success and not resp.entries
        result = client.answer("Where are my keys?")
        assert result.abstained and not result.evidence_ids  # empty memory: abstain, never invent
    finally:
        client.close()
        for p in procs:
            p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        for p in procs:
            try:
                p.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]

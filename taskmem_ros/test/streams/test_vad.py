"""silero-vad as the segmenter loads it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("silero_vad", reason="the 'audio' extra is not installed")


def test_loading_silero_keeps_the_process_torch_threads() -> None:
    """silero_vad sets torch to one thread at import; loading our VAD must not leave the policy
    LLM and MiniLM of the same process single-threaded (a fresh process: the import is once)."""
    code = (
        "import torch; torch.set_num_threads(3)\n"
        "from taskmem_ros.streams.vad import SileroVAD\n"
        "SileroVAD().load(); print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split()[-1] == "3"

"""Shared helpers for the store tests (imported by name; conftest modules are not importable twice)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import taskmem_ros
from taskmem_ros.types import NS_PER_S, MemoryDraft


def python_child(script: str, *args: str) -> subprocess.Popen[str]:
    """``python -c script args...`` with this checkout's package importable, stdout and stderr
    piped as text: the writer / forgetter processes the kill -9 tests kill."""
    env = dict(os.environ, PYTHONPATH=str(Path(taskmem_ros.__file__).resolve().parents[1]))
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )


def drafts(texts: list[str], start_s: int = 0, step_s: int = 10) -> list[MemoryDraft]:
    """One draft per text on consecutive 10 s windows starting at ``start_s``."""
    return [
        MemoryDraft(t, start_ns=(start_s + i * step_s) * NS_PER_S, end_ns=(start_s + (i + 1) * step_s) * NS_PER_S)
        for i, t in enumerate(texts)
    ]

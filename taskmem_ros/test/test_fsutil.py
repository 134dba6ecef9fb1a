"""The one atomic writer: a reader sees the old file or the new one, never a half, and no temp
file is left behind, whether the write succeeds, raises, or the writer is killed mid-write."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskmem_ros.fsutil import atomic_write, atomic_write_with


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_bytes(b"old")
    atomic_write(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "index.bin"
    target.write_bytes(b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_with(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.bin"]


def test_kill_9_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "vectors.npy"
    target.write_bytes(b"old")
    started = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from taskmem_ros.fsutil import atomic_write_with

        def write(tmp):
            tmp.write_bytes(b"partial")
            Path({str(started)!r}).touch()
            os.kill(os.getpid(), signal.SIGKILL)

        atomic_write_with({str(target)!r}, write)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert proc.returncode == -9 and started.exists()
    assert target.read_bytes() == b"old"  # the rename never happened; the orphan temp is hidden
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("vectors.npy", "started")]
    assert all(name.startswith(".vectors.npy.") and name.endswith(".tmp") for name in leftovers), leftovers

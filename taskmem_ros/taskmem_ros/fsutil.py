"""One atomic writer for every file we publish (reports, clip archive, steering vectors, the
vector index): a reader sees the old file or the new one, never half of one, even after kill -9.

Temp file in the target's directory (so ``os.replace`` is a rename on one filesystem), fsync,
rename, then fsync the directory so the rename itself survives a power loss where the
filesystem allows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably."""
    atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: str | Path, obj: object) -> Path:
    """A benchmark's or report's JSON, atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())
    return path


def atomic_write_with(path: str | Path, write: Callable[[Path], object]) -> None:
    """Atomic write for libraries that insist on writing a file by name themselves
    (``hnswlib.Index.save_index``): ``write(tmp)`` fills the temp file, we fsync and rename it."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename durable (not possible on every FS)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

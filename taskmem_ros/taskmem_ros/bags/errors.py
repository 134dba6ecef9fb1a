"""One exception type for everything that goes wrong with a bag, so callers (CLIs, the replay
node) can print ``path: reason`` instead of a rosbags/sqlite/zstd traceback."""

from __future__ import annotations

import os


class BagError(Exception):
    """A bag (or the media to build one) cannot be read or written; ``str()`` is ``path: reason``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

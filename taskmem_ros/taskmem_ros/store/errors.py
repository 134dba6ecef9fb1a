"""One exception family for everything that can go wrong below the store API.

Callers (ROS nodes, the memorizer loop) catch ``StoreError`` and keep running; the
subclasses let them tell "disk is full" from "file is corrupt" without parsing text.
"""

from __future__ import annotations


class StoreError(RuntimeError):
    """A store operation failed; carries the database path and the underlying cause."""

    def __init__(self, message: str, *, path: str = "", cause: BaseException | None = None) -> None:
        self.path = path
        self.cause = cause
        detail = f"{message} (store {path!r})" if path else message
        if cause is not None:
            detail += f": {type(cause).__name__}: {cause}"
        super().__init__(detail)


class StoreFullError(StoreError):
    """The disk or the configured size cap (``store.max_db_mb``) is exhausted."""


class StoreCorruptError(StoreError):
    """The file is not a SQLite database or its pages are malformed."""


class StoreReadOnlyError(StoreError):
    """The database file or its directory cannot be written."""


class StoreLockedError(StoreError):
    """Another process held the write lock for longer than ``store.busy_timeout_ms``."""


def classify(message: str, *, path: str, cause: BaseException) -> StoreError:
    """Map a DB-API error onto the most specific StoreError subclass (by SQLite's message)."""
    text = str(cause).lower()
    cls: type[StoreError] = StoreError
    if "full" in text:  # SQLITE_FULL: "database or disk is full"
        cls = StoreFullError
    elif "not a database" in text or "malformed" in text or "corrupt" in text:
        cls = StoreCorruptError
    elif "readonly" in text or "read-only" in text or "unable to open" in text:
        cls = StoreReadOnlyError
    elif "locked" in text or "busy" in text:
        cls = StoreLockedError
    return cls(message, path=path, cause=cause)

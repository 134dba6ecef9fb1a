"""Error classes shared across the core, one per idea (component-specific ones such as
``StoreError`` or ``EngineError`` stay with their component)."""

from __future__ import annotations

from pathlib import Path


class MissingDependencyError(ImportError):
    """An optional package a configured component needs is not installed; the message names
    what to install (a pip package, a ``taskmem_ros[extra]`` or an apt package)."""

    @classmethod
    def for_extra(cls, extra: str, module: str) -> MissingDependencyError:
        return cls(
            f"this backend needs {module!r}, which is not installed; install it with "
            f"`pip install 'taskmem_ros[{extra}]'`"
        )


class ModelFileError(ValueError):
    """A model file a configured component needs is missing or unreadable (the message names
    the path and the package or extra that provides it)."""


class MediaError(ValueError):
    """Media that is missing or cannot be opened, probed, decoded or produced (sample videos,
    speech synthesis, dataset files). ``path`` names the file when there is one."""

    def __init__(self, reason: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path is not None else reason)

"""Adapter errors: every bad adapter file or mismatch becomes one of these, never a raw exception.

``AdapterError`` subclasses ``ValueError`` so callers that already treat bad input as
``ValueError`` (service handlers, CLIs) report it instead of crashing.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class AdapterError(ValueError):
    """An adapter could not be read, verified, attached or detached."""


class ChecksumMismatch(AdapterError):
    """The artifact's sha256 is not the one the caller expected (wrong or altered file)."""


class BaseModelMismatch(AdapterError):
    """The adapter was trained for a different base model than the loaded one."""


class IncompatibleAdapter(AdapterError):
    """The artifact is unreadable/corrupt, or does not fit the model (layer, hidden size, modules)."""


def require(module: str) -> ModuleType:
    """Import an optional dependency, naming the extra that provides it when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"taskmem_ros.adapters needs {module!r}, which is not installed; install it with "
            "`pip install 'taskmem_ros[llm]'`"
        ) from exc

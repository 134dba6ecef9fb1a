"""Lazy imports of optional heavy packages, failing with the pip package to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from taskmem_ros.errors import MissingDependencyError


def require(module: str, pip_name: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise an error that names the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {pip_name!r} (pip install {pip_name}); "
            f"import of {module!r} failed: {exc}"
        ) from exc

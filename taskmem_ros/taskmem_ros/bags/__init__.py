"""rosbag2 I/O without ROS: record videos into bags, read (damaged) bags back.

Attributes are imported lazily so ``import taskmem_ros.bags`` stays cheap; the recorder lives in
:mod:`taskmem_ros.bags.record_video` (same name as its function, hence not re-exported).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BagError": "errors",
    "BagInfo": "reader",
    "BagMessage": "reader",
    "ReadStats": "reader",
    "bag_info": "reader",
    "iter_bag": "reader",
    "make_typestore": "typestore",
    "default_typestore": "typestore",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

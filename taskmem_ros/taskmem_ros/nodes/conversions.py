"""ROS message <-> core type translation. Pixel/sample decoding itself lives in the core
(`streams.image_codec`, `streams.audio`) so bag replay and live topics share one decoder."""

from __future__ import annotations

import json
from typing import Any

from builtin_interfaces.msg import Time

from taskmem_interfaces.msg import AdapterInfo, MemoryEntry
from taskmem_ros.streams.messages import audio_to_block, time_to_ns
from taskmem_ros.types import NS_PER_S, MemoryRecord

__all__ = [
    "adapter_info_msg",
    "audio_to_block",
    "ns_to_time",
    "record_to_msg",
    "time_to_ns",
]


def ns_to_time(ns: int) -> Time:
    ns = max(0, int(ns))
    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def record_to_msg(rec: MemoryRecord) -> MemoryEntry:
    msg = MemoryEntry()
    msg.header.stamp = ns_to_time(rec.start_ns)
    msg.header.frame_id = rec.stream
    msg.id = int(rec.id)
    msg.stream = rec.stream
    msg.kind = rec.kind
    msg.text = rec.text
    msg.clip_start = ns_to_time(rec.start_ns)
    msg.clip_end = ns_to_time(rec.end_ns)
    msg.source = rec.source
    msg.model_id = rec.model_id
    msg.adapter_id = rec.adapter_id
    msg.confidence = float(rec.confidence)
    return msg


def adapter_info_msg(info: dict[str, Any] | None, stamp_ns: int = 0) -> AdapterInfo:
    msg = AdapterInfo()
    msg.header.stamp = ns_to_time(stamp_ns)
    if info:
        msg.adapter_id = str(info.get("adapter_id", ""))
        msg.kind = str(info.get("kind", ""))
        msg.base_model = str(info.get("base_model", ""))
        msg.path = str(info.get("path", ""))
        msg.sha256 = str(info.get("sha256", ""))
        msg.active = bool(info.get("active", False))
        msg.metrics_json = json.dumps(info.get("metrics", {}))
    return msg

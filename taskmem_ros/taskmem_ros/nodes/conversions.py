"""Core records -> our ROS messages. Sensor messages -> core types live in the ROS-free
`streams.messages`, so bag replay and live topics share one decoder."""

from __future__ import annotations

import json
from typing import Any

from builtin_interfaces.msg import Time

from taskmem_interfaces.msg import AdapterInfo, MemoryEntry
from taskmem_ros.types import NS_PER_S, MemoryRecord


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


def adapter_to_msg(meta: Any, *, active: bool, stamp_ns: int = 0) -> AdapterInfo:
    """An ``adapters.AdapterMeta`` (or None: the base model) as AdapterInfo."""
    msg = AdapterInfo()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.active = bool(active and meta is not None)
    if meta is None:
        return msg
    msg.adapter_id = meta.adapter_id
    msg.kind = meta.kind
    msg.base_model = meta.base_model
    msg.path = str(meta.path)
    msg.sha256 = meta.sha256
    extra = meta.extra if isinstance(meta.extra, dict) else {}
    msg.metrics_json = json.dumps(extra.get("metrics", {}), default=str)
    return msg

"""Core records -> our ROS messages. Sensor messages -> core types live in the ROS-free
`streams.messages`, so bag replay and live topics share one decoder."""

from __future__ import annotations

import json
from typing import Any

from builtin_interfaces.msg import Time

from taskmem_interfaces.action import RunPhase2
from taskmem_interfaces.msg import AdapterInfo, MemoryEntry, TunerStatus
from taskmem_ros.training.supervisor import numeric_metrics
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


def swap_response(resp: Any, previous: Any, active: Any, *, success: bool, message: str, stamp_ns: int) -> Any:
    """A LoadAdapter reply; refused: ``previous`` is still the active one."""
    resp.success, resp.message = success, message
    resp.previous = adapter_to_msg(previous, active=not success, stamp_ns=stamp_ns)
    resp.active = adapter_to_msg(active, active=True, stamp_ns=stamp_ns)
    return resp


def run_result_to_msg(result: Any, out: Any) -> Any:
    """A ``training.supervisor.RunResult`` into a RunPhase2.Result (``out``)."""
    out.success = result.outcome == "done" and (result.delivered or not result.delivery_message)
    out.outcome, out.message = result.outcome, result.message
    a = result.adapter
    out.adapter = AdapterInfo(
        adapter_id=a.get("adapter_id", ""),
        kind=a.get("kind", ""),
        base_model=a.get("base_model", ""),
        path=a.get("path", ""),
        sha256=a.get("sha256", ""),
        active=bool(result.delivered),
        metrics_json=json.dumps(result.metrics, default=str),
    )
    pairs = numeric_metrics(result.metrics)
    out.metric_names, out.metric_values = [n for n, _ in pairs], [v for _, v in pairs]
    out.delivered, out.delivery_message = bool(result.delivered), result.delivery_message
    out.active_adapter_id = result.active_adapter_id
    return out


def tuner_status_to_msg(status: dict[str, Any], stamp: Time) -> TunerStatus:
    """``Phase2Supervisor.status()`` as TunerStatus."""
    msg = TunerStatus(state=status["state"], stage=status["stage"], fraction=float(status["fraction"]))
    msg.header.stamp = stamp
    msg.runs, msg.tasks, msg.tasks_covered = int(status["runs"]), int(status["tasks"]), int(status["tasks_covered"])
    msg.every_n_tasks = int(status["every_n_tasks"])
    last = status.get("last")
    if last is not None:
        msg.last_outcome, msg.last_message = last.outcome, last.message
        msg.last_adapter = run_result_to_msg(last, RunPhase2.Result()).adapter
        msg.last_delivery_success, msg.last_delivery_message = bool(last.delivered), last.delivery_message
        msg.active_adapter_id = last.active_adapter_id
    return msg


def time_to_ns(t: Any) -> int | None:
    """builtin_interfaces/Time -> ns; zero means "unbounded" (None)."""
    ns = int(t.sec) * 1_000_000_000 + int(t.nanosec)
    return ns or None


def forget_request_to_selector(req: Any) -> Any:
    """ForgetMemory request -> ForgetSelector ("" / zero / empty fields are "no criterion";
    a selector left without any is refused by ForgetSelector itself)."""
    from taskmem_ros.store.forget import ForgetSelector

    return ForgetSelector(
        ids=tuple(int(i) for i in req.ids),
        stream=req.stream or None,
        start_ns=time_to_ns(req.window_start),
        end_ns=time_to_ns(req.window_end),
        kind=req.kind or None,
        text=req.text if req.text != "" else None,
        everything=bool(req.everything),
    )

"""Health of each node as OK/WARN/ERROR statuses (ROS-free; nodes publish them on /diagnostics).

The levels and thresholds follow ``DiagnosticsConfig``; the node only turns these records into
``diagnostic_msgs/DiagnosticArray``. Counts come from the core (Memorizer stats, store stats),
rates from :class:`RateMeter`, fed by the sensor callbacks.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskmem_ros.config import DiagnosticsConfig, TaskMemConfig

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus.OK/WARN/ERROR
MB = 1024 * 1024


@dataclass
class Status:
    name: str
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


class RateMeter:
    """Events per second over a sliding window; the clock is injectable so tests need no sleeps."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.total = 0
        self._stamps: deque[float] = deque()
        self.started = clock()
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.total += 1
            self._stamps.append(self.clock())

    def rate(self) -> float:
        with self._lock:
            now = self.clock()
            while self._stamps and self._stamps[0] < now - self.window_s:
                self._stamps.popleft()
            span = min(self.window_s, max(now - self.started, 1e-9))
            return len(self._stamps) / span


class DeltaWatch:
    """How much a monotonically growing counter grew since the previous report."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def delta(self, key: str, total: int) -> int:
        prev = self._last.get(key, 0)
        self._last[key] = total
        return max(0, total - prev)


def rate_status(name: str, meter: RateMeter, expected_hz: float, cfg: DiagnosticsConfig) -> Status:
    rate = meter.rate()
    values = {"rate_hz": f"{rate:.2f}", "expected_hz": f"{expected_hz:.2f}", "received": str(meter.total)}
    if expected_hz <= 0:
        return Status(name, OK, f"{rate:.2f} Hz (not checked)", values)
    if meter.clock() - meter.started < cfg.rate_window_s:
        return Status(name, OK, f"{rate:.2f} Hz (warming up)", values)
    if rate == 0:
        return Status(name, ERROR, f"no messages for {cfg.rate_window_s:g} s (expected {expected_hz:g} Hz)", values)
    if rate < expected_hz * cfg.rate_warn_fraction:
        return Status(name, WARN, f"{rate:.2f} Hz, below {cfg.rate_warn_fraction:g} x {expected_hz:g} Hz", values)
    return Status(name, OK, f"{rate:.2f} Hz", values)


def store_status(name: str, store_stats: dict[str, Any], cfg: TaskMemConfig) -> Status:
    """Size (entries, bytes) and free disk beside a SQLite store; a cap (store.max_db_mb) nearly hit is WARN."""
    d = cfg.diagnostics
    db_bytes = int(store_stats.get("db_bytes", 0))
    values = {k: str(store_stats.get(k, "")) for k in ("entries", "clips", "tasks", "adapters", "backend")}
    values["db_mb"] = f"{db_bytes / MB:.1f}"
    level, message = OK, f"{store_stats.get('entries', 0)} entries, {db_bytes / MB:.1f} MB"
    path = store_stats.get("path")
    if path and path != ":memory:":
        free_mb = shutil.disk_usage(Path(path).resolve().parent).free / MB
        values["free_disk_mb"] = f"{free_mb:.0f}"
        if free_mb < d.free_disk_error_mb:
            level, message = ERROR, f"only {free_mb:.0f} MB free beside the store (< {d.free_disk_error_mb:g} MB)"
        elif free_mb < d.free_disk_warn_mb:
            level, message = WARN, f"{free_mb:.0f} MB free beside the store (< {d.free_disk_warn_mb:g} MB)"
    cap = cfg.store.max_db_mb
    if level == OK and cap > 0 and db_bytes / MB >= cap * d.store_warn_fraction:
        level, message = WARN, f"store at {db_bytes / MB:.1f} MB of its {cap:g} MB cap"
    return Status(name, level, message, values)


class MemorizerHealth:
    """Camera/microphone rates, backlog and drops, policy latency, active adapter."""

    def __init__(self, cfg: TaskMemConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.frames = RateMeter(cfg.diagnostics.rate_window_s, clock)
        self.audio = RateMeter(cfg.diagnostics.rate_window_s, clock)
        self._drops = DeltaWatch()

    def report(self, prefix: str, mem: Any, stats: dict[str, int]) -> list[Status]:
        """From a running ``memorizer.Memorizer`` and its (node-merged) stats."""
        adapter = mem.policy.active_adapter
        return self.statuses(
            prefix, stats, mem.policy_latency_s, adapter.adapter_id if adapter else "", mem.store.stats()
        )

    def statuses(
        self, prefix: str, stats: dict[str, int], latency_s: float | None, adapter_id: str, store_stats: dict[str, Any]
    ) -> list[Status]:
        d, p = self.cfg.diagnostics, prefix
        out = [
            rate_status(f"{p}: camera", self.frames, d.expected_frame_hz, d),
            rate_status(f"{p}: microphone", self.audio, d.expected_audio_hz, d),
        ]
        pending, cap = int(stats.get("clips_pending", 0)), self.cfg.ingest.max_pending_clips
        dropped = {k: int(v) for k, v in stats.items() if "dropped" in k or "rejected" in k}
        new_drops = sum(self._drops.delta(k, v) for k, v in dropped.items())
        values = {
            "clips_pending": str(pending),
            "max_pending_clips": str(cap),
            **{k: str(v) for k, v in dropped.items()},
        }
        values["clips_failed"] = str(stats.get("clips_failed", 0))
        if new_drops:
            level, message = WARN, f"{new_drops} dropped since the last report ({pending}/{cap} clips pending)"
        elif pending >= cap * d.backlog_warn_fraction:
            level, message = WARN, f"backlog {pending}/{cap} clips: the policy is falling behind"
        else:
            level, message = OK, f"{pending}/{cap} clips pending"
        out.append(Status(f"{p}: ingest", level, message, values))
        warn_s = d.latency_warn_s or self.cfg.segmenter.clip_seconds
        lat = {"policy_s_per_clip": "" if latency_s is None else f"{latency_s:.3f}", "warn_s": f"{warn_s:g}"}
        if latency_s is None:
            out.append(Status(f"{p}: policy", OK, "no clip memorized yet", lat))
        elif latency_s > warn_s:
            out.append(Status(f"{p}: policy", WARN, f"{latency_s:.2f} s per clip > {warn_s:g} s", lat))
        else:
            out.append(Status(f"{p}: policy", OK, f"{latency_s:.2f} s per clip", lat))
        out.append(Status(f"{p}: adapter", OK, adapter_id or "(base model)", {"adapter_id": adapter_id}))
        out.append(store_status(f"{p}: store", store_stats, self.cfg))
        return out


def task_statuses(prefix: str, answered: int, latency_s: float | None, store: Any, cfg: TaskMemConfig) -> list[Status]:
    """The task server: questions answered, the last one's latency, and its store."""
    lat = "" if latency_s is None else f"{latency_s:.3f}"
    message = f"{answered} answered" + (f", last in {lat} s" if lat else "")
    tasks = Status(f"{prefix}: tasks", OK, message, {"answered": str(answered), "last_latency_s": lat})
    return [tasks, store_status(f"{prefix}: store", store.stats(), cfg)]


def tuner_status(prefix: str, status: dict[str, Any]) -> Status:
    """The tuner's state (``Phase2Supervisor.status()``): WARN after a failed round or a refused delivery."""
    last: Any = status.get("last")  # training.supervisor.RunResult | None
    values = {k: str(v) for k, v in status.items() if k != "last"}
    values["last_outcome"] = last.outcome if last is not None else ""
    tried = last is not None and last.outcome == "done" and bool(last.delivery_message)
    values["last_delivery"] = "" if not tried else ("accepted" if last.delivered else "refused")
    if last is not None and last.outcome == "error":
        return Status(f"{prefix}: phase2", WARN, f"last round failed: {last.message}"[:200], values)
    if tried and not last.delivered:
        return Status(f"{prefix}: phase2", WARN, f"robot refused the adapter: {last.delivery_message}"[:200], values)
    state = status.get("state", "idle")
    return Status(
        f"{prefix}: phase2", OK, f"{state}, {status.get('tasks', 0)} tasks, {status.get('runs', 0)} runs", values
    )

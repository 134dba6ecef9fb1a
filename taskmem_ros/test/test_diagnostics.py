"""OK/WARN/ERROR from counts and an injected clock: no sleeps, no dependence on load."""

from __future__ import annotations

from pathlib import Path

from taskmem_ros.config import DiagnosticsConfig, IngestConfig, StoreConfig, TaskMemConfig
from taskmem_ros.diagnostics import ERROR, OK, WARN, MemorizerHealth, RateMeter, store_status, tuner_status
from taskmem_ros.training.supervisor import RunResult


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _cfg(**diag: float) -> TaskMemConfig:
    return TaskMemConfig(diagnostics=DiagnosticsConfig(**diag), ingest=IngestConfig(max_pending_clips=4))


def test_rates_against_expected() -> None:
    clock = Clock()
    health = MemorizerHealth(_cfg(expected_frame_hz=10.0, rate_window_s=5.0), clock)
    by = {s.name: s for s in health.statuses("m", {}, None, "", {})}
    assert by["m: camera"].level == OK and "warming up" in by["m: camera"].message
    clock.t += 6.0  # a full window without frames
    by = {s.name: s for s in health.statuses("m", {}, None, "", {})}
    assert by["m: camera"].level == ERROR and "no messages" in by["m: camera"].message
    assert by["m: microphone"].level == OK  # expected_audio_hz 0: not checked
    for _ in range(20):  # 4 Hz over the window: below 0.5 x 10 Hz
        health.frames.tick()
    by = {s.name: s for s in health.statuses("m", {}, None, "", {})}
    assert by["m: camera"].level == WARN and by["m: camera"].values["received"] == "20"
    for _ in range(40):
        health.frames.tick()
    assert {s.name: s for s in health.statuses("m", {}, None, "", {})}["m: camera"].level == OK
    clock.t += 10.0
    assert health.frames.rate() == 0.0


def test_backlog_drops_latency_and_adapter() -> None:
    health = MemorizerHealth(_cfg(latency_warn_s=2.0), Clock())
    by = {s.name: s for s in health.statuses("m", {"clips_pending": 1}, 0.5, "ad1", {})}
    assert by["m: ingest"].level == OK and by["m: policy"].level == OK and by["m: adapter"].message == "ad1"
    by = {s.name: s for s in health.statuses("m", {"clips_pending": 3}, 3.0, "", {})}
    assert by["m: ingest"].level == WARN and "backlog 3/4" in by["m: ingest"].message
    assert by["m: policy"].level == WARN and by["m: adapter"].message == "(base model)"
    stats = {"clips_pending": 0, "clips_dropped_backlog": 2, "frames_rejected": 1}
    by = {s.name: s for s in health.statuses("m", stats, None, "", {})}
    assert by["m: ingest"].level == WARN and by["m: ingest"].message.startswith("3 dropped")
    by = {s.name: s for s in health.statuses("m", stats, None, "", {})}  # no new drops since
    assert by["m: ingest"].level == OK and by["m: ingest"].values["clips_dropped_backlog"] == "2"


def test_store_size_free_disk_and_cap(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    db.write_bytes(b"x" * (2 * 1024 * 1024))
    stats = {"entries": 7, "path": str(db), "db_bytes": db.stat().st_size}
    ok = store_status("s", stats, _cfg(free_disk_warn_mb=0.0, free_disk_error_mb=0.0))
    assert ok.level == OK and ok.values["entries"] == "7" and float(ok.values["free_disk_mb"]) > 0
    huge = 1e12  # more free space than any disk has: the thresholds are what decide
    assert store_status("s", stats, _cfg(free_disk_warn_mb=huge, free_disk_error_mb=0.0)).level == WARN
    assert store_status("s", stats, _cfg(free_disk_warn_mb=huge, free_disk_error_mb=huge)).level == ERROR
    no_disk_limits = DiagnosticsConfig(free_disk_warn_mb=0.0, free_disk_error_mb=0.0)
    capped = TaskMemConfig(store=StoreConfig(max_db_mb=2.0), diagnostics=no_disk_limits)
    assert store_status("s", stats, capped).level == WARN


def test_tuner_states() -> None:
    assert tuner_status("t", {"state": "training", "tasks": 3, "runs": 1}).message.startswith("training")
    failed = tuner_status("t", {"state": "idle", "last": RunResult("error", "boom")})
    assert failed.level == WARN and "boom" in failed.message
    refused = RunResult("done", delivery_message="sha mismatch")
    got = tuner_status("t", {"last": refused})
    assert got.level == WARN and got.values["last_delivery"] == "refused"
    accepted = RunResult("done", delivered=True, delivery_message="active adapter: a1")
    assert tuner_status("t", {"last": accepted}).level == OK
    assert tuner_status("t", {"last": RunResult("skipped", "too few tasks")}).level == OK


def test_rate_meter_counts_everything() -> None:
    clock = Clock()
    meter = RateMeter(2.0, clock)
    for _ in range(5):
        meter.tick()
        clock.t += 1.0
    assert meter.total == 5 and meter.rate() == 1.0  # 2 ticks in the last 2 s

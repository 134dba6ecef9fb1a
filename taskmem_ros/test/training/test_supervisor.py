"""The tuner's ROS-free half: when a round is due, and how a training process's output and exit
become events and a RunResult (a tiny script speaks the taskmem-train JSON protocol)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from taskmem_ros.config import StoreConfig, TaskMemConfig, TrainingConfig
from taskmem_ros.node_config import TunerParams
from taskmem_ros.store import EpisodicStore
from taskmem_ros.training.supervisor import Phase2Supervisor, RunResult, TrainingRun, feedback_fields, numeric_metrics

SCRIPT = """
import json, sys
print("not json", flush=True)
print(json.dumps({"event": "progress", "stage": "train", "fraction": 0.5, "step": 3, "loss": 0.25}), flush=True)
if sys.argv[1] == "crash":
    print("boom", file=sys.stderr, flush=True)
    sys.exit(1)
print(json.dumps({"event": "done", "adapter_id": "a1", "path": "/nonexistent", "sha256": "x",
                  "metrics": {"after": {"accuracy": 0.5}, "pairs": 3}}), flush=True)
"""


def _sup(tmp_path: Path, mode: str, store: EpisodicStore, **params: Any) -> tuple[Phase2Supervisor, list, list]:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    events: list[dict[str, Any]] = []
    finished: list[RunResult] = []
    p = TunerParams(train_command=[sys.executable, str(script), mode], **params)
    sup = Phase2Supervisor(
        p, TaskMemConfig(), TrainingConfig(), store, events.append, lambda _run, r: finished.append(r)
    )
    return sup, events, finished


def test_due_after_every_n_new_tasks_and_eval_tasks_never_count(tmp_path: Path) -> None:
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}", embedder="hash")) as store:
        sup, _, _ = _sup(tmp_path, "ok", store, every_n_tasks=2)
        store.log_task("eval", asked_at_ns=1, is_eval=True)
        store.log_task("q1", asked_at_ns=2)
        assert not sup.due()
        store.log_task("q2", asked_at_ns=3)
        assert sup.due()
        off, _, _ = _sup(tmp_path, "ok", store, every_n_tasks=0)
        assert not off.due()  # 0 = only on request


def test_done_and_crashed_runs(tmp_path: Path) -> None:
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}", embedder="hash")) as store:
        store.log_task("q1", asked_at_ns=2)
        sup, events, finished = _sup(tmp_path, "ok", store)
        run = sup.start("test")
        assert isinstance(run, TrainingRun) and sup.start("again") == "already running"
        assert run.finished.wait(60)
        assert [e["event"] for e in events] == ["started", "progress", "done"]  # "not json" is no event
        (result,) = finished
        assert result.outcome == "done" and result.adapter["adapter_id"] == "a1"
        assert sorted(numeric_metrics(result.metrics)) == [("after.accuracy", 0.5), ("pairs", 3.0)]
        assert sup.baseline == 1 and not sup.running and sup.status()["last"] is result

        crash, events, finished = _sup(tmp_path, "crash", store)
        run = crash.start()
        assert isinstance(run, TrainingRun) and run.finished.wait(60)
        (result,) = finished
        assert result.outcome == "error" and "status 1" in result.message and "boom" in result.message
        assert events[-1]["event"] == "error"  # said for the process, which died without saying why


def test_feedback_fields() -> None:
    f = feedback_fields({"event": "progress", "stage": "train", "fraction": 0.3, "step": 2, "loss": 0.5})
    assert (f["stage"], f["fraction"], f["step"], f["loss"]) == ("train", 0.3, 2, 0.5) and math.isnan(f["reward"])
    assert feedback_fields({"event": "started"})["stage"] == "started"

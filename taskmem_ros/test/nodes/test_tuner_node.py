"""The tuner node on a real ROS graph: a RunPhase2 goal runs training as its own process, its JSON
progress comes back as typed feedback, the adapter is published and delivered to a real memorizer
(tiny Qwen3-VL), which accepts it or refuses it (wrong base model) while the tuner reports it in
the action result and its TunerStatus, and carries on.

Process handling (crash, skip, refusal, triggers) is driven by a small training script that speaks
the taskmem-train JSON protocol and writes a real steering adapter with save_steering, so each
outcome can be forced; test_tuner_real.py runs the real `taskmem-train phase2` through the tuner
to the robot, with nothing stood in.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.ros

PKG = Path(__file__).resolve().parents[2]

FAKE_TRAIN = r'''
"""Speaks taskmem-train's JSON protocol; behaviour from a JSON mode file (re-read every run)."""
import json, sys, time
from pathlib import Path

import yaml

from taskmem_ros.adapters import adapter_sha256, save_steering
import numpy as np

args = sys.argv[1:]
mode = json.loads(Path(args[args.index("--mode-file") + 1]).read_text())
params = yaml.safe_load(Path(args[args.index("--params") + 1]).read_text())["tuner"]["ros__parameters"]

def emit(**ev):
    print(json.dumps(ev), flush=True)

print("a library chatting on stdout", flush=True)  # not JSON: logged, never republished
emit(event="progress", stage="sample", fraction=0.1, clips=3)
time.sleep(float(mode.get("sleep", 0.0)))
if mode["mode"] == "crash":
    print("Traceback: boom", file=sys.stderr, flush=True)
    sys.exit(1)
if mode["mode"] == "skip":
    emit(event="skipped", message="1 logged task(s); phase2.min_tasks=4 are needed")
    sys.exit(3)
for step in (1, 2):
    emit(event="progress", stage="train", fraction=0.3 + 0.25 * step, step=step, loss=1.0 / step)
adapter_id = mode["adapter_id"]
path = Path(params["phase2"]["adapters_dir"]) / f"{adapter_id}.safetensors"
base = mode.get("base_model") or params["model"]["model_id"]
vec = np.random.default_rng(0).normal(size=64) * 1e-4
save_steering(path, vec, base_model=base, layer=1, adapter_id=adapter_id, extra={"metrics": {"pairs": 3}})
emit(event="done", adapter_id=adapter_id, path=str(path), sha256=adapter_sha256(path), metrics={"pairs": 3})
'''


def _write_mode(path: Path, **mode: Any) -> None:
    path.write_text(json.dumps(mode))


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, tiny_qwen3vl: Path) -> Iterator[dict[str, Any]]:
    from graph_client import GraphClient, Watcher, tuner_process

    from taskmem_ros.nodes.bringup import bringup_process

    tmp = tmp_path_factory.mktemp("tuner_graph")
    adapters = tmp / "adapters"
    adapters.mkdir()
    db = tmp / "memory.db"
    model = str(tiny_qwen3vl)
    params = yaml.safe_load((PKG / "config" / "robot.yaml").read_text())
    shared = params["/**"]["ros__parameters"]
    shared["store"] = {"url": f"sqlite:///{db}", "embedder": "hash"}
    shared["policy"] = {"backend": "qwen3vl", "batch_size": 1, "max_new_tokens": 32, "context_size": 0}
    shared["model"] = {"model_id": model, "device_map": "cpu", "max_pixels": 64 * 64}
    shared["adapter"] = {"allowed_dir": str(adapters)}
    robot_params = tmp / "robot.yaml"
    robot_params.write_text(yaml.safe_dump(params))

    script = tmp / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    mode_file = tmp / "mode.json"
    _write_mode(mode_file, mode="ok", adapter_id="tuned-v1", sleep=2.0)
    tuner_params = tmp / "tuner.yaml"
    tuner_params.write_text(
        yaml.safe_dump(
            {
                "tuner": {
                    "ros__parameters": {
                        "store": {"url": f"sqlite:///{db}", "embedder": "hash"},
                        "model": {"model_id": model, "device_map": "cpu"},
                        "phase2": {"adapters_dir": str(adapters), "steps": 5},
                        "every_n_tasks": 3,
                        "poll_s": 0.5,
                        "train_command": [sys.executable, str(script), "--mode-file", str(mode_file)],
                        "delivery_wait_s": 20.0,
                        "delivery_timeout_s": 60.0,
                        "autostart": True,
                    }
                }
            }
        )
    )
    with (
        bringup_process(robot_params, tmp / "bringup.log"),
        tuner_process(tuner_params, tmp / "tuner.log") as tuner,
    ):
        client = GraphClient("tuner_probe")
        watcher = Watcher(client)
        try:
            yield {
                "client": client,
                "watcher": watcher,
                "tuner": tuner,
                "mode": mode_file,
                "adapters": adapters,
                "db": db,
                "model": model,
                "log": tmp / "tuner.log",
            }
        finally:
            client.close()
    assert tuner.returncode == 0, (tmp / "tuner.log").read_text()[-3000:]


SUCCEEDED, CANCELED, ABORTED = 4, 5, 6  # action_msgs/GoalStatus


def _metrics(result: Any) -> dict[str, float]:
    return dict(zip(result.metric_names, result.metric_values, strict=True))


def test_run_progress_adapter_and_delivery(graph: dict[str, Any]) -> None:
    from taskmem_ros.adapters import adapter_sha256

    watcher = graph["watcher"]
    first = watcher.send(reason="test")
    busy = watcher.run()  # one run at a time: the second goal is answered, not queued
    assert busy.status == ABORTED and busy.result.outcome == "busy"
    assert watcher.status().state == "training"
    response = watcher.result(first)
    assert response.status == SUCCEEDED, response.result
    result = response.result
    assert result.success and result.outcome == "done"
    assert result.delivered and result.active_adapter_id == "tuned-v1", result.delivery_message
    assert _metrics(result) == {"pairs": 3.0}
    path = Path(result.adapter.path)
    assert path.parent == graph["adapters"] and result.adapter.sha256 == adapter_sha256(path)
    assert result.adapter.kind == "steering" and result.adapter.base_model == graph["model"]

    stages = [f for f in watcher.feedback if f.stage in ("sample", "train")]
    assert [f.stage for f in stages] == ["sample", "train", "train"]
    assert all(0.0 <= f.fraction <= 1.0 for f in stages)
    assert [f.step for f in stages] == [-1, 1, 2] and stages[-1].loss == 0.5 and math.isnan(stages[0].loss)
    assert watcher.feedback[0].stage == "started" and watcher.feedback[-1].stage == "delivering"
    assert not any("chatting" in f.message for f in watcher.feedback)  # non-JSON lines are not progress

    # the tuner's latched AdapterInfo: trained (inactive), then active once the robot accepted it
    deadline = time.monotonic() + 60
    while len(watcher.adapters) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    trained, active = watcher.adapters[0], watcher.adapters[-1]
    assert (trained.adapter_id, trained.sha256, trained.active) == ("tuned-v1", result.adapter.sha256, False)
    assert json.loads(trained.metrics_json) == {"pairs": 3}
    assert active.adapter_id == "tuned-v1" and active.active

    # the robot: its latched memory/adapter names the new adapter
    client = graph["client"]
    deadline = time.monotonic() + 60
    while (not client.adapters or client.adapters[-1].adapter_id != "tuned-v1") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.adapters[-1].adapter_id == "tuned-v1" and client.adapters[-1].sha256 == result.adapter.sha256
    status = watcher.wait_status(lambda s: s.state == "idle" and s.runs == 1)
    assert status.last_outcome == "done" and status.last_delivery_success
    assert status.last_adapter.adapter_id == "tuned-v1" and status.active_adapter_id == "tuned-v1"
    assert [s.state for s in watcher.statuses if s.state != "idle"][:1] == ["training"]


def test_refused_delivery_is_reported_and_robot_keeps_its_adapter(graph: dict[str, Any]) -> None:
    client, watcher = graph["client"], graph["watcher"]
    watcher.clear()
    _write_mode(graph["mode"], mode="ok", adapter_id="tuned-wrong", base_model="Qwen/Qwen3-VL-8B-Instruct")
    response = watcher.run()
    result = response.result
    assert response.status == SUCCEEDED and result.outcome == "done"  # trained fine; the robot said no
    assert not result.success and not result.delivered
    assert "base" in result.delivery_message.lower() and result.active_adapter_id == "tuned-v1"  # rolled back
    assert client.trigger("/memorizer/get_stats")["adapter_swaps_failed"] >= 1
    assert client.adapters[-1].adapter_id == "tuned-v1"
    status = watcher.status()
    assert status.state == "idle" and not status.last_delivery_success


def test_failed_skipped_cancelled_and_undelivered_runs(graph: dict[str, Any]) -> None:
    watcher = graph["watcher"]
    _write_mode(graph["mode"], mode="crash")
    crashed = watcher.run()
    assert crashed.status == ABORTED and crashed.result.outcome == "error"
    assert "status 1" in crashed.result.message and "boom" in crashed.result.message
    assert watcher.status().last_outcome == "error"
    _write_mode(graph["mode"], mode="skip")
    skipped = watcher.run()
    assert skipped.status == SUCCEEDED and skipped.result.outcome == "skipped" and not skipped.result.success
    assert "min_tasks" in skipped.result.message
    _write_mode(graph["mode"], mode="ok", adapter_id="tuned-slow", sleep=60.0)
    watcher.clear()
    future = watcher.send()
    watcher.wait_status(lambda s: s.state == "training")
    watcher.client._wait(watcher.last_handle.cancel_goal_async(), 30)
    cancelled = watcher.result(future, timeout_s=60)
    assert cancelled.status == CANCELED and cancelled.result.outcome == "cancelled"
    _write_mode(graph["mode"], mode="ok", adapter_id="tuned-kept")
    kept = watcher.run(deliver=watcher.Goal.DELIVER_NO)
    assert kept.result.outcome == "done" and kept.result.success and not kept.result.delivery_message
    assert graph["client"].adapters[-1].adapter_id == "tuned-v1"  # not delivered: the robot is unchanged
    assert graph["tuner"].poll() is None  # still serving


def test_every_n_tasks_triggers_a_run(graph: dict[str, Any]) -> None:
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore

    watcher = graph["watcher"]
    runs = watcher.status().runs
    watcher.clear()
    _write_mode(graph["mode"], mode="ok", adapter_id="tuned-v2")
    with EpisodicStore(StoreConfig(url=f"sqlite:///{graph['db']}", embedder="hash")) as store:
        store.log_task("eval only", asked_at_ns=1, is_eval=True)  # evaluation tasks never count
        for i in range(2):
            store.log_task(f"where is thing {i}?", asked_at_ns=10 + i, stream="robot")
        covered = watcher.status().tasks_covered
        deadline = time.monotonic() + 30
        while watcher.status().tasks < covered + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert watcher.status().runs == runs  # 2 < every_n_tasks=3
        store.log_task("where is thing 2?", asked_at_ns=20, stream="robot")
    started = watcher.wait_status(lambda s: s.state == "training", timeout_s=30)
    assert started.runs == runs + 1
    done = watcher.wait_status(lambda s: s.state == "idle" and s.runs == runs + 1, timeout_s=120)
    assert done.last_outcome == "done" and done.last_delivery_success and done.active_adapter_id == "tuned-v2"
    assert done.tasks_covered >= covered + 3
    assert watcher.status().runs == runs + 1  # covered: no second automatic run

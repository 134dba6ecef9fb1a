"""The tuner node on a real ROS graph: it runs training as its own process, republishes the JSON
progress, publishes the adapter and delivers it to a real memorizer (tiny Qwen3-VL), which
accepts it or refuses it (wrong base model) while the tuner reports and carries on.

Process handling (crash, skip, refusal, triggers) is driven by a small training script that speaks
the taskmem-train JSON protocol and writes a real steering adapter with save_steering, so each
outcome can be forced; test_tuner_real.py runs the real `taskmem-train phase2` through the tuner
to the robot, with nothing stood in.
"""

from __future__ import annotations

import json
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


def test_run_progress_adapter_and_delivery(graph: dict[str, Any]) -> None:
    from taskmem_ros.adapters import adapter_sha256

    client, watcher = graph["client"], graph["watcher"]
    assert client.trigger("/tuner/run_phase2")["message"] == "started"
    assert client.trigger("/tuner/run_phase2")["message"] == "already running"  # one run at a time
    assert client.trigger("/tuner/get_status")["running"] is True
    done = watcher.wait_for(lambda e: e["event"] == "done")
    delivered = watcher.wait_for(lambda e: e["event"] in ("delivered", "delivery_refused"))
    assert delivered["event"] == "delivered" and delivered["success"], delivered
    assert delivered["active"] == "tuned-v1"

    stages = [e for e in watcher.events if e["event"] == "progress"]
    assert [e["stage"] for e in stages] == ["sample", "train", "train"]
    assert all(0.0 <= e["fraction"] <= 1.0 for e in stages) and stages[-1]["loss"] == 0.5
    assert not any("chatting" in json.dumps(e) for e in watcher.events)  # non-JSON lines are not progress
    path = Path(done["path"])
    assert path.parent == graph["adapters"] and done["sha256"] == adapter_sha256(path)

    # the tuner's latched AdapterInfo: trained (inactive), then active once the robot accepted it
    deadline = time.monotonic() + 10
    while len(watcher.adapters) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    trained, active = watcher.adapters[0], watcher.adapters[-1]
    assert (trained.adapter_id, trained.sha256, trained.active) == ("tuned-v1", done["sha256"], False)
    assert trained.kind == "steering" and trained.base_model == graph["model"]
    assert json.loads(trained.metrics_json) == {"pairs": 3}
    assert active.adapter_id == "tuned-v1" and active.active

    # the robot: its latched memory/adapter names the new adapter
    deadline = time.monotonic() + 10
    while (not client.adapters or client.adapters[-1].adapter_id != "tuned-v1") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.adapters[-1].adapter_id == "tuned-v1" and client.adapters[-1].sha256 == done["sha256"]
    status = client.trigger("/tuner/get_status")
    assert status["running"] is False and status["runs"] == 1
    assert status["last_delivery"]["success"] is True and status["last_result"]["adapter_id"] == "tuned-v1"


def test_refused_delivery_is_reported_and_robot_keeps_its_adapter(graph: dict[str, Any]) -> None:
    client, watcher = graph["client"], graph["watcher"]
    watcher.clear()
    _write_mode(graph["mode"], mode="ok", adapter_id="tuned-wrong", base_model="Qwen/Qwen3-VL-8B-Instruct")
    assert client.trigger("/tuner/run_phase2")["message"] == "started"
    watcher.wait_for(lambda e: e["event"] == "done")
    refused = watcher.wait_for(lambda e: e["event"] in ("delivered", "delivery_refused"))
    assert refused["event"] == "delivery_refused" and not refused["success"], refused
    assert "base" in refused["message"].lower() and refused["active"] == "tuned-v1"  # robot rolled back
    assert client.trigger("/memorizer/get_stats")["adapter_swaps_failed"] >= 1
    assert client.adapters[-1].adapter_id == "tuned-v1"
    status = client.trigger("/tuner/get_status")
    assert status["last_delivery"]["success"] is False and status["running"] is False


def test_failed_and_skipped_runs_are_reported(graph: dict[str, Any]) -> None:
    client, watcher = graph["client"], graph["watcher"]
    watcher.clear()
    _write_mode(graph["mode"], mode="crash")
    assert client.trigger("/tuner/run_phase2")["message"] == "started"
    err = watcher.wait_for(lambda e: e["event"] == "error")
    assert err["returncode"] == 1 and "boom" in err["message"]
    watcher.clear()
    _write_mode(graph["mode"], mode="skip")
    deadline = time.monotonic() + 10
    while client.trigger("/tuner/get_status")["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.trigger("/tuner/run_phase2")["message"] == "started"
    watcher.wait_for(lambda e: e["event"] == "skipped")
    deadline = time.monotonic() + 10
    while (status := client.trigger("/tuner/get_status"))["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status["last_result"]["event"] == "skipped"
    assert not any(e["event"] in ("done", "delivered", "delivery_refused") for e in watcher.events)
    assert graph["tuner"].poll() is None  # still serving


def test_every_n_tasks_triggers_a_run(graph: dict[str, Any]) -> None:
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore

    watcher = graph["watcher"]
    watcher.clear()
    _write_mode(graph["mode"], mode="ok", adapter_id="tuned-v2")
    with EpisodicStore(StoreConfig(url=f"sqlite:///{graph['db']}", embedder="hash")) as store:
        store.log_task("eval only", asked_at_ns=1, is_eval=True)  # evaluation tasks never count
        for i in range(2):
            store.log_task(f"where is thing {i}?", asked_at_ns=10 + i, stream="robot")
        time.sleep(2.0)
        assert not any(e["event"] == "started" for e in watcher.events)  # 2 < every_n_tasks=3
        store.log_task("where is thing 2?", asked_at_ns=20, stream="robot")
    started = watcher.wait_for(lambda e: e["event"] == "started", timeout_s=30)
    assert started["reason"] == "every_n_tasks" and started["tasks"] == 3
    delivered = watcher.wait_for(lambda e: e["event"] in ("delivered", "delivery_refused"))
    assert delivered["event"] == "delivered" and delivered["active"] == "tuned-v2"
    time.sleep(1.5)  # no new tasks since: no second automatic run
    assert sum(e["event"] == "started" for e in watcher.events) == 1

"""The real Phase Two through the tuner node to the robot: nothing stood in.

Its own module, so no other tuner or memorizer of a module-scoped fixture shares the graph."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros

PKG = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_real_phase2_through_the_tuner_reaches_the_robot(tmp_path: Path) -> None:
    """No stand-in: the tuner's default command (`taskmem-train phase2`) trains a steering adapter
    from the tasks and clips the robot logged, and the robot's memorizer accepts it."""
    from graph_client import GraphClient, Watcher, tuner_process

    from taskmem_ros.config import PolicyConfig, StoreConfig
    from taskmem_ros.llm.tiny import build_tiny_qwen3vl, synthetic_clip, teach
    from taskmem_ros.nodes.bringup import bringup_process
    from taskmem_ros.policy.prompt import clip_messages
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.store.clip_archive import ClipArchive
    from taskmem_ros.types import MemoryDraft, PolicyContext

    db, clips_dir, adapters = tmp_path / "memory.db", tmp_path / "clips", tmp_path / "adapters"
    adapters.mkdir()
    speech = ["The keys are on the kitchen table.", "The spare battery is in the blue cabinet.", "Meeting at three."]
    archive = ClipArchive(clips_dir)
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="hash")) as store:  # what deployment left
        for i, s in enumerate(speech):
            clip = synthetic_clip(i, s)
            archive.save(clip)
            recs = store.add_entries("robot", [MemoryDraft(text=s, start_ns=clip.start_ns, end_ns=clip.end_ns)])
            store.log_task(f"What about item {i}?", asked_at_ns=clip.end_ns + 5 * 10**9, answer=s,
                           evidence_ids=[r.id for r in recs], stream="robot")  # fmt: skip
    # a policy that memorizes either the spoken fact or an unrelated line: the candidates differ
    model = build_tiny_qwen3vl(tmp_path / "model", seed=0)
    pcfg = PolicyConfig(backend="qwen3vl", max_new_tokens=40, context_size=0)
    examples = []
    for i, s in enumerate(speech):
        messages = clip_messages(synthetic_clip(i, s), PolicyContext(), pcfg)
        examples.append((messages, json.dumps({"entries": [{"kind": "semantic", "text": s}]})))
        examples.append((messages, json.dumps({"entries": [{"kind": "episodic", "text": "A grey wall."}]})))
    teach(model, examples, steps=40)
    model_cfg = {"model_id": str(model), "device_map": "cpu", "max_pixels": 64 * 64}

    params = yaml.safe_load((PKG / "config" / "robot.yaml").read_text())
    shared = params["/**"]["ros__parameters"]
    shared["store"] = {"url": f"sqlite:///{db}", "embedder": "hash"}
    shared["policy"] = {"backend": "qwen3vl", "batch_size": 1, "max_new_tokens": 40, "context_size": 0}
    shared["model"] = model_cfg
    shared["adapter"] = {"allowed_dir": str(adapters)}
    robot_params = tmp_path / "robot.yaml"
    robot_params.write_text(yaml.safe_dump(params))
    tuner_params = tmp_path / "tuner.yaml"
    tuner_params.write_text(yaml.safe_dump({"tuner": {"ros__parameters": {
        "stream": "robot",
        "store": {"url": f"sqlite:///{db}", "embedder": "hash"},
        "ingest": {"keep_clips_dir": str(clips_dir)},
        "policy": {"backend": "qwen3vl", "max_new_tokens": 40, "context_size": 0},
        "model": model_cfg,
        "phase2": {"adapters_dir": str(adapters), "min_tasks": 2, "candidates": 3, "steps": 3,
                   "holdout_fraction": 0.0, "max_clips": 3, "layer": 1},
        "every_n_tasks": 0,
        "delivery_wait_s": 30.0,
        "autostart": True,
    }}}))  # fmt: skip
    with (
        bringup_process(robot_params, tmp_path / "bringup.log"),
        tuner_process(tuner_params, tmp_path / "tuner.log"),
    ):
        client = GraphClient("tuner_real_probe")
        watcher = Watcher(client)
        try:
            response = watcher.run(reason="real", timeout_s=520)
            result = response.result
            assert result.outcome == "done", (result.message, (tmp_path / "tuner.log").read_text()[-3000:])
            assert result.delivered and result.active_adapter_id == result.adapter.adapter_id, result
            assert result.metric_names  # held-out metrics came back typed
            stages = {f.stage for f in watcher.feedback}
            assert {"sample", "train", "register", "delivering"} <= stages
            deadline = time.monotonic() + 60
            while (not client.adapters or client.adapters[-1].adapter_id != result.adapter.adapter_id) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)
            assert client.adapters[-1].adapter_id == result.adapter.adapter_id  # the robot runs the new adapter
            assert client.adapters[-1].sha256 == result.adapter.sha256
        finally:
            client.close()

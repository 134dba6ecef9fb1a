"""The Qwen3-VL policy and answerer on the real ROS graph, and LoadAdapter with rollback.

bag -> taskmem-replay -> memorizer (tiny Qwen3-VL, taught to emit JSON) -> SQLite; then the
adapter service: a good steering adapter is swapped in between clips and stamped on the
entries written after it; bad checksums, wrong base models, missing layers, corrupt files
and paths outside adapter.allowed_dir are refused and the previous adapter stays active.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros

PKG = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph(
    tmp_path_factory: pytest.TempPathFactory, small_bag: tuple[Path, object], taught_qwen3vl_footage: Path
) -> Iterator[dict]:
    from graph_client import GraphClient, record_later_bag, replay_bag

    from taskmem_ros.adapters import save_steering
    from taskmem_ros.nodes.bringup import bringup_process

    tmp = tmp_path_factory.mktemp("qwen3vl_graph")
    adapters = tmp / "adapters"
    adapters.mkdir()
    # the same recording 2 minutes later: memorized after the adapter swap
    later = record_later_bag(small_bag[0], tmp / "later_bag")
    assert later.frames == 100
    rng = np.random.default_rng(0)
    model = str(taught_qwen3vl_footage)
    # a gentle vector (norm ~1e-3): memories stay well-formed, the adapter id must still be stamped
    good = save_steering(adapters / "focus-v1.safetensors", rng.normal(size=64) * 1e-4, base_model=model, layer=1)
    params = yaml.safe_load((PKG / "config" / "robot.yaml").read_text())
    shared = params["/**"]["ros__parameters"]
    shared["store"]["url"] = f"sqlite:///{tmp / 'memory.db'}"
    # context_size 0: the taught model always writes the same sentence, which the context would
    # (rightly) reject as a repeat; here every clip must commit entries so the adapter stamp shows
    shared["policy"] = {"backend": "qwen3vl", "batch_size": 2, "max_new_tokens": 48, "context_size": 0}
    shared["answer"] = {"backend": "qwen3vl", "max_new_tokens": 24}
    shared["model"] = {"model_id": model, "device_map": "cpu", "max_pixels": 64 * 64}
    shared["adapter"] = {"allowed_dir": str(adapters)}
    params["memorizer"]["ros__parameters"].update(
        {"sensor_qos": "replay", "ingest": {"max_pending_clips": 100, "drop_policy": "drop_newest"}}
    )
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with bringup_process(path, tmp / "bringup.log") as proc:
        client = GraphClient()
        try:
            replay_bag(small_bag[0])
            before = client.trigger("/memorizer/flush")
            yield {
                "client": client,
                "before": before,
                "good": good,
                "adapters": adapters,
                "later_bag": tmp / "later_bag",
                "db": tmp / "memory.db",
                "model": model,
                "proc": proc,
            }
        finally:
            client.close()


def test_model_memorizes_the_replayed_clips(graph: dict) -> None:
    stats, client = graph["before"], graph["client"]
    assert stats["clips_memorized"] == 3 and stats["clips_failed"] == 0, stats
    assert stats["policy_outputs"] == 3
    # Every clip yields a memory: new ones are committed, repeats of one already written (in the
    # store or earlier in the same batch) are counted. How clips fall into batches depends on
    # machine load, so only the sum is fixed.
    assert stats["entries_committed"] >= 1
    assert stats["entries_committed"] + stats.get("policy_entries_repeat_context", 0) >= 3, stats
    entries = client.query("", max_results=100).entries
    assert {e.model_id for e in entries} == {graph["model"]} and {e.adapter_id for e in entries} == {""}
    assert any("corridor" in e.text for e in entries)


def test_adapter_swap_verification_and_rollback(graph: dict, minilm: object) -> None:
    from taskmem_ros.adapters import adapter_sha256, save_steering

    client, adapters, good = graph["client"], graph["adapters"], graph["good"]
    ok = client.load_adapter(good.path, adapter_sha256(good.path))
    assert ok.success, ok.message
    assert ok.previous.adapter_id == "" and ok.active.adapter_id == "focus-v1" and ok.active.active
    assert ok.active.sha256 == adapter_sha256(good.path) and ok.active.kind == "steering"

    rng = np.random.default_rng(1)
    wrong_base = save_steering(
        adapters / "other.safetensors", rng.normal(size=64), base_model="Qwen/Qwen3-VL-8B-Instruct", layer=1
    )
    no_layer = save_steering(adapters / "deep.safetensors", rng.normal(size=64), base_model=graph["model"], layer=7)
    wrong_size = save_steering(adapters / "wide.safetensors", rng.normal(size=128), base_model=graph["model"], layer=0)
    corrupt = adapters / "corrupt.safetensors"
    data = bytearray(Path(good.path).read_bytes())
    data[-10] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    outside = save_steering(
        Path(graph["db"]).parent / "outside.safetensors", rng.normal(size=64), base_model=graph["model"], layer=1
    )
    refused = {
        "checksum": client.load_adapter(good.path, "0" * 64),
        "base model": client.load_adapter(wrong_base.path),
        "layer": client.load_adapter(no_layer.path),
        "hidden": client.load_adapter(wrong_size.path),
        "corrupt": client.load_adapter(str(corrupt)),
        "missing": client.load_adapter(str(adapters / "nope.safetensors")),
        "allowed_dir": client.load_adapter(outside.path),
    }
    for why, resp in refused.items():
        assert not resp.success, why
        assert resp.active.adapter_id == "focus-v1", (why, resp.message)  # rolled back / untouched
        assert resp.message, why
    assert "sha256" in refused["checksum"].message.lower() or "checksum" in refused["checksum"].message.lower()
    assert "allowed_dir" in refused["allowed_dir"].message
    stats = client.trigger("/memorizer/get_stats")
    assert stats["adapter_swaps"] == 1 and stats["adapter_swaps_failed"] >= 1
    assert client.adapters and client.adapters[-1].adapter_id == "focus-v1"  # latched AdapterInfo

    # entries written after the swap carry the adapter that wrote them
    from graph_client import replay_bag

    replay_bag(graph["later_bag"])
    after = client.trigger("/memorizer/flush")
    assert after["clips_memorized"] > graph["before"]["clips_memorized"], after
    entries = client.query("", max_results=200).entries
    late = [e for e in entries if e.clip_start.sec >= 1_700_000_000 + 120]
    early = [e for e in entries if e.clip_start.sec < 1_700_000_000 + 120]
    assert late and {e.adapter_id for e in late} == {"focus-v1"}, [(e.text, e.adapter_id) for e in late]
    assert {e.adapter_id for e in early} == {""}

    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore

    with EpisodicStore(StoreConfig(url=f"sqlite:///{graph['db']}"), embedder=minilm) as store:  # type: ignore[arg-type]
        active = store.adapters(active_only=True)
    assert [(a.adapter_id, a.sha256) for a in active] == [("focus-v1", adapter_sha256(good.path))]


def test_unload_returns_to_base_model(graph: dict) -> None:
    resp = graph["client"].load_adapter("")
    assert resp.success and resp.active.adapter_id == "" and resp.previous.adapter_id == "focus-v1"


def test_llm_answerer_over_the_graph(graph: dict) -> None:
    client = graph["client"]
    result = client.answer("Who walked along the corridor?", choices=["A man", "A dog", "A robot", "Nobody"])
    assert result is not None
    assert result.abstained or result.choice_index in range(4)
    assert set(result.evidence_ids) <= {e.id for e in client.query("", max_results=200).entries}
    assert result.task_id > 0

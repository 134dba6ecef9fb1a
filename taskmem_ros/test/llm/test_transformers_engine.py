"""TransformersEngine on tiny Qwen3-VL / Qwen3-VL-MoE checkpoints loaded through from_pretrained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.config import ConfigError, ModelConfig
from taskmem_ros.llm.base import ChatRequest, EngineError, subsample, text_part, video_part
from taskmem_ros.llm.qwen3vl_video import VideoGeometry, video_input
from taskmem_ros.llm.transformers_engine import TransformersEngine, release_engine, shared_engine


def _video_request(n_frames: int = 5, seed: int = 0, max_new_tokens: int = 12) -> ChatRequest:
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(n_frames)]
    msgs = [
        {"role": "system", "content": "You are a memory."},
        {"role": "user", "content": [video_part(frames, [2.0 * i for i in range(n_frames)]), text_part("What now?")]},
    ]
    return ChatRequest(msgs, max_new_tokens=max_new_tokens)


def _engine(path: Path) -> TransformersEngine:
    return TransformersEngine(ModelConfig(model_id=str(path), device_map="cpu", max_pixels=64 * 64))


@pytest.mark.parametrize("moe", [False, True], ids=["dense", "moe"])
def test_loads_and_generates_batched_video_and_text(tiny_qwen3vl: Path, tiny_qwen3vl_moe: Path, moe: bool) -> None:
    path = tiny_qwen3vl_moe if moe else tiny_qwen3vl
    engine = _engine(path)
    expected = "Qwen3VLMoeForConditionalGeneration" if moe else "Qwen3VLForConditionalGeneration"
    assert type(engine.model).__name__ == expected
    reqs = [_video_request(5), ChatRequest([{"role": "user", "content": "text only"}], max_new_tokens=12)]
    batch = engine.generate(reqs)
    assert [g.finish_reason for g in batch] in (
        ["length", "length"],
        ["stop", "length"],
        ["length", "stop"],
        ["stop", "stop"],
    )
    assert all(g.prompt_tokens > 0 and g.completion_tokens >= 0 for g in batch)
    assert batch[0].prompt_tokens > batch[1].prompt_tokens  # the video tokens are in the prompt
    single = [engine.generate([r])[0] for r in reqs]
    assert [g.text for g in single] == [g.text for g in batch]  # left padding does not change greedy output
    assert engine.stats["generate_calls"] == 3


def test_video_prompt_carries_frame_timestamps(tiny_qwen3vl: Path) -> None:
    engine = _engine(tiny_qwen3vl)
    inputs = engine.prepare([_video_request(5)])
    text = engine.tokenizer.decode(inputs["input_ids"][0])
    # 5 keyframes at 0,2,4,6,8 s -> padded to 6 -> 3 temporal patches at the pair means
    assert "<1.0 seconds>" in text and "<5.0 seconds>" in text and "<8.0 seconds>" in text
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == 3
    n_video_tokens = int((inputs["mm_token_type_ids"] == 2).sum())
    assert n_video_tokens == t * h * w // 4  # merge_size 2 x 2
    assert inputs["pixel_values_videos"].shape == (t * h * w, 3 * 2 * 16 * 16)


def test_video_input_respects_pixel_budget() -> None:
    geo = VideoGeometry()
    frames = [np.zeros((720, 1280, 3), np.uint8)] * 4
    small = video_input(frames, [0, 1, 2, 3], geo, min_pixels=32 * 32, max_pixels=128 * 128)
    big = video_input(frames, [0, 1, 2, 3], geo, min_pixels=32 * 32, max_pixels=512 * 512)
    assert small.grid_thw[1] * small.grid_thw[2] * 256 <= 128 * 128 * 1.1
    assert big.pixel_values.shape[0] > small.pixel_values.shape[0]
    with pytest.raises(ValueError, match="RGB"):
        video_input([np.zeros((64, 64), np.uint8)] * 2, [0, 1], geo, min_pixels=1024, max_pixels=4096)


def test_shared_engine_is_one_copy_per_config(tiny_qwen3vl: Path) -> None:
    cfg = ModelConfig(model_id=str(tiny_qwen3vl), device_map="cpu", max_pixels=64 * 64)
    a, b = shared_engine(cfg), shared_engine(cfg)
    assert a is b
    release_engine(a)
    assert a.model is not None  # still referenced by b
    release_engine(b)
    assert a.model is None


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="nowhere"):
        TransformersEngine(ModelConfig(model_id=str(tmp_path / "nowhere"), device_map="cpu", local_files_only=True))


def test_fp8_without_hopper_is_refused(tiny_qwen3vl: Path) -> None:
    with pytest.raises(EngineError, match="fp8"):
        TransformersEngine(ModelConfig(model_id=str(tiny_qwen3vl), device_map="cpu", quantization="fp8"))


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("dtype", "float8", "model.dtype"),
        ("quantization", "gptq", "model.quantization"),
        ("device_map", "gpu0", "model.device_map"),
        ("attn_implementation", "magic", "model.attn_implementation"),
        ("max_pixels", 10, "model.max_pixels"),
    ],
)
def test_model_config_errors_quote_value_and_options(field: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        ModelConfig(**{field: value})  # type: ignore[arg-type]
    assert repr(value) in str(err.value)


def test_subsample_spreads_evenly() -> None:
    assert subsample(3, 16) == [0, 1, 2]
    assert subsample(100, 4) == [0, 33, 66, 99]


def test_system_prompt_kv_cache_is_reused_without_changing_output(taught_qwen3vl: Path, tmp_path: Path) -> None:
    from taskmem_ros.adapters import save_steering
    from taskmem_ros.config import PolicyConfig
    from taskmem_ros.llm.tiny import synthetic_clip
    from taskmem_ros.policy.prompt import clip_messages
    from taskmem_ros.types import PolicyContext

    cached = TransformersEngine(ModelConfig(model_id=str(taught_qwen3vl), device_map="cpu", max_pixels=64 * 64))
    plain = TransformersEngine(
        ModelConfig(model_id=str(taught_qwen3vl), device_map="cpu", max_pixels=64 * 64, prefix_cache=False)
    )
    reqs = [ChatRequest(clip_messages(synthetic_clip(i, "Hi."), PolicyContext(), PolicyConfig()), 40) for i in range(3)]
    a = [cached.generate([r])[0].text for r in reqs]
    b = [plain.generate([r])[0].text for r in reqs]
    assert a == b and cached.stats["prefix_cache_hits"] == 3 and plain.stats["prefix_cache_hits"] == 0
    # an adapter changes the cached keys/values: the cache follows the swap
    vec = np.random.default_rng(0).normal(size=64) * 20
    meta = save_steering(tmp_path / "s.safetensors", vec, base_model=str(taught_qwen3vl), layer=0)
    for engine in (cached, plain):
        engine.load_adapter(meta.path)
    assert [cached.generate([r])[0].text for r in reqs] == [plain.generate([r])[0].text for r in reqs]


@pytest.mark.parametrize(("quant", "layer_type"), [("bnb-4bit", "Linear4bit"), ("bnb-8bit", "Linear8bitLt")])
def test_bitsandbytes_quantization_keeps_vision_in_full_precision(
    tiny_qwen3vl_moe: Path, quant: str, layer_type: str
) -> None:
    pytest.importorskip("bitsandbytes")
    engine = TransformersEngine(
        ModelConfig(model_id=str(tiny_qwen3vl_moe), device_map="cpu", quantization=quant, max_pixels=64 * 64)
    )
    lm = engine.model.model.language_model.layers[0].self_attn.q_proj
    assert type(lm).__name__ == layer_type
    assert type(engine.model.model.visual.blocks[0].attn.qkv).__name__ == "Linear"  # skipped on purpose
    gen = engine.generate([_video_request(4)])[0]
    assert gen.finish_reason in ("stop", "length") and not gen.error


@pytest.mark.parametrize(("name", "billions"), [("qwen3-vl-30b-a3b", 31.07), ("qwen3-vl-8b", 8.77)])
def test_published_configs_have_the_released_sizes(name: str, billions: float) -> None:
    """The benchmark's real-size random models: built on the meta device (no memory), their
    parameter counts match the released checkpoints."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration, Qwen3VLMoeForConditionalGeneration

    from taskmem_ros.llm.tiny import PUBLISHED, build_tokenizer, published_config

    config = published_config(name, build_tokenizer())
    cls = Qwen3VLMoeForConditionalGeneration if PUBLISHED[name]["moe"] else Qwen3VLForConditionalGeneration
    with torch.device("meta"):
        model = cls._from_config(config)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, abs=0.02)

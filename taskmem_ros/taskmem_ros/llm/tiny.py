"""Tiny Qwen3-VL / Qwen3-VL-MoE checkpoints for tests and CPU benchmarks (no hub needed).

Built from the real transformers config classes with random weights and a byte-level BPE
tokenizer trained here, carrying the Qwen3-VL special tokens and a Qwen3-VL style chat
template, then saved with ``save_pretrained`` so they load through exactly the path a real
checkpoint takes (``TransformersEngine`` -> ``from_pretrained``).

``python -m taskmem_ros.llm.tiny OUT_DIR [--moe] [--seed N]`` writes one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from taskmem_ros.types import Clip, TranscriptSegment, VideoFrame

# Qwen3-VL's special tokens (same strings as the released tokenizer; ids differ, which is fine:
# everything looks them up by string).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
ADDED_TEXT_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>"]

# The layout of Qwen3-VL's template (im_start/im_end turns, vision placeholders, the empty
# think block that Instruct-style prompting uses when thinking is off).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- elif part['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'video' -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and not enable_thinking -%}{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif -%}"
    "{%- endif -%}"
)

# Text the BPE merges are learned from: the prompt vocabulary plus everyday scene words, so
# prompts tokenize to a realistic few tokens per word instead of bytes.
_CORPUS = """
You are the memory of a robot. Watch the clip and listen to the transcript. Write short, factual
memories of what is new: who did what, where, when; objects, text on signs, spoken facts.
Return JSON: {"entries": [{"kind": "episodic", "text": "..."}, {"kind": "semantic", "text": "..."}]}
Recent memories. Task focus. Transcript. Clip from 0.0 s to 10.0 s. seconds. Question. Options.
Answer with the letter of the correct option, or E if the memory does not say.
Insufficient information. Memories. Answer:
A person walks down the hallway carrying a red bag. The keys are on the kitchen table.
Two people talk near the door. The sign says WET FLOOR. Alice said the meeting is at three.
The robot sees a blue cup, a laptop, a chair, a window and a plant. Someone opens the fridge.
""" + " ".join(f"{i} {i}.{i % 10}" for i in range(0, 100))


def build_tokenizer(vocab_size: int = 1024) -> Any:
    """A byte-level BPE (Qwen2 style) with the Qwen3-VL special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + ADDED_TEXT_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=32768,
        padding_side="left",  # batched generation pads on the left
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(vocab_size: int, *, moe: bool, token_ids: dict[str, int]) -> Any:
    """Real Qwen3-VL config classes at toy sizes; every reduced setting is commented."""
    text: dict[str, Any] = {
        "vocab_size": vocab_size,  # our 1k BPE instead of 151,936
        "hidden_size": 64,  # 4096 in 8B
        "intermediate_size": 128,  # 12288 in 8B
        "num_hidden_layers": 2,  # 36 in 8B
        "num_attention_heads": 4,  # 32 in 8B
        "num_key_value_heads": 2,  # 8 in 8B (keeps grouped-query attention)
        "head_dim": 16,  # 128 in 8B
        "max_position_embeddings": 8192,  # 262,144 in release
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": [4, 2, 2],  # [24, 20, 20] scaled to head_dim 16 (sum = head_dim / 2)
            "mrope_interleaved": True,
        },
        "tie_word_embeddings": True,
        "pad_token_id": token_ids["<|endoftext|>"],
        "eos_token_id": token_ids["<|im_end|>"],
    }
    vision: dict[str, Any] = {
        "depth": 2,  # 27 in release
        "hidden_size": 32,  # 1152 in release
        "intermediate_size": 64,  # 4304 in release
        "num_heads": 2,  # 16 in release
        "patch_size": 16,  # unchanged: the processor geometry is the real one
        "spatial_merge_size": 2,  # unchanged
        "temporal_patch_size": 2,  # unchanged
        "out_hidden_size": 64,  # = text hidden_size
        "num_position_embeddings": 256,  # 2304 in release (a 16x16 grid is plenty for small frames)
        "deepstack_visual_indexes": [0, 1],  # [8, 16, 24] in release; one per tiny block
    }
    ids: dict[str, Any] = {
        "image_token_id": token_ids["<|image_pad|>"],
        "video_token_id": token_ids["<|video_pad|>"],
        "vision_start_token_id": token_ids["<|vision_start|>"],
        "vision_end_token_id": token_ids["<|vision_end|>"],
    }
    if moe:
        from transformers import Qwen3VLMoeConfig

        text.update(
            {
                "num_experts": 4,  # 128 in 30B-A3B
                "num_experts_per_tok": 2,  # 8 in 30B-A3B
                "moe_intermediate_size": 32,  # 768 in 30B-A3B
                "decoder_sparse_step": 1,  # unchanged: every layer is MoE
            }
        )
        return Qwen3VLMoeConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)


# Published sizes (the releases' config.json): benchmarks build random weights at these sizes,
# no download needed. Parameter counts: 31.07B (30B-A3B), 8.77B (8B).
_ROPE = {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [24, 20, 20], "mrope_interleaved": True}
_VISION = {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16,
           "deepstack_visual_indexes": [8, 16, 24]}  # fmt: skip
_TEXT = {"vocab_size": 151936, "num_attention_heads": 32, "head_dim": 128, "max_position_embeddings": 262144,
         "rope_parameters": _ROPE}  # fmt: skip
PUBLISHED: dict[str, dict[str, Any]] = {
    "qwen3-vl-30b-a3b": {
        "moe": True,
        "text": dict(_TEXT, hidden_size=2048, intermediate_size=6144, num_hidden_layers=48, num_key_value_heads=4,
                     moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8, decoder_sparse_step=1),
        "vision": dict(_VISION, out_hidden_size=2048),
    },
    "qwen3-vl-8b": {
        "moe": False,
        "text": dict(_TEXT, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_key_value_heads=8),
        "vision": dict(_VISION, out_hidden_size=4096),
    },
}  # fmt: skip


def published_config(name: str, tokenizer: Any) -> Any:
    """A real-size Qwen3-VL config (random weights are the caller's business) whose special
    token ids are those of ``tokenizer``; the vocabulary keeps the released size."""
    from transformers import Qwen3VLConfig, Qwen3VLMoeConfig

    if name not in PUBLISHED:
        raise ValueError(f"published config {name!r} is unknown; expected one of {sorted(PUBLISHED)}")
    spec = PUBLISHED[name]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    cls = Qwen3VLMoeConfig if spec["moe"] else Qwen3VLConfig
    return cls(
        text_config=dict(spec["text"], pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"]),
        vision_config=spec["vision"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )


def video_preprocessor_config() -> dict[str, Any]:
    """What ``video_preprocessor_config.json`` of a Qwen3-VL release holds that we read."""
    return {
        "processor_class": "Qwen3VLProcessor",
        "video_processor_type": "Qwen3VLVideoProcessor",
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "size": {"shortest_edge": 4096, "longest_edge": 16 * 256 * 256},
        "do_sample_frames": False,
    }


def build_tiny_qwen3vl(out_dir: str | Path, *, moe: bool = False, seed: int = 0) -> Path:
    """Write a loadable tiny checkpoint (config, random weights, tokenizer, preprocessor)."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration, Qwen3VLMoeForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = tiny_config(len(tokenizer), moe=moe, token_ids=token_ids)
    torch.manual_seed(seed)
    cls = Qwen3VLMoeForConditionalGeneration if moe else Qwen3VLForConditionalGeneration
    model = cls(config).eval()
    model.generation_config.pad_token_id = token_ids["<|endoftext|>"]
    model.generation_config.eos_token_id = token_ids["<|im_end|>"]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (out / "video_preprocessor_config.json").write_text(json.dumps(video_preprocessor_config(), indent=2))
    pre = dict(video_preprocessor_config(), image_processor_type="Qwen2VLImageProcessor")
    pre.pop("video_processor_type")
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return out


def teach(
    model_dir: str | Path,
    examples: list[tuple[list[dict[str, Any]], str]],
    *,
    steps: int = 40,
    lr: float = 3e-3,
    max_pixels: int = 64 * 64,
    seed: int = 0,
) -> Path:
    """Fit a tiny checkpoint to answer each prompt with the given text, and save it in place.

    Random weights emit noise; tests of the parsing-free path (clip -> entries in the store,
    a steering vector visibly changing memories) need a model that emits well-formed JSON.
    A few dozen AdamW steps on the real inputs (video tensors included) get it there.
    """
    import torch

    from taskmem_ros.config import ModelConfig
    from taskmem_ros.llm.base import ChatRequest
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    torch.manual_seed(seed)
    engine = TransformersEngine(
        ModelConfig(model_id=str(model_dir), device_map="cpu", dtype="float32", max_pixels=max_pixels)
    )
    tok, model = engine.tokenizer, engine.model
    batches = []
    for messages, response in examples:
        inputs = engine.prepare([ChatRequest(messages)])
        target = torch.tensor([tok(response + "<|im_end|>", add_special_tokens=False)["input_ids"]])
        n = target.shape[1]
        inputs["input_ids"] = torch.cat([inputs["input_ids"], target], dim=1)
        inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(target)], dim=1)
        inputs["mm_token_type_ids"] = torch.cat(
            [inputs["mm_token_type_ids"], torch.zeros_like(target, dtype=inputs["mm_token_type_ids"].dtype)], dim=1
        )
        labels = torch.full_like(inputs["input_ids"], -100)
        labels[:, -n:] = target
        batches.append((inputs, labels))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        for inputs, labels in batches:
            loss = model(**inputs, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()
    model.save_pretrained(model_dir)
    return Path(model_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--moe", action="store_true", help="Qwen3-VL-MoE (30B-A3B layout) instead of dense")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(build_tiny_qwen3vl(args.out_dir, moe=args.moe, seed=args.seed))
    return 0


def synthetic_clip(index: int, speech: str = "", *, frames: int = 5, size: tuple[int, int] = (120, 160)) -> Clip:
    """A 10 s clip of random-noise keyframes (2 s apart) and an optional transcript line: the
    input the tiny checkpoints are taught on (tests, ``benchmarks/bench_phase2.py``)."""
    import numpy as np

    rng = np.random.default_rng(index)
    start = index * 10 * 10**9
    keyframes = [
        VideoFrame(start + k * 2 * 10**9, rng.integers(0, 255, (*size, 3), dtype=np.uint8)) for k in range(frames)
    ]
    transcript = [TranscriptSegment(start + 10**9, start + 3 * 10**9, speech)] if speech else []
    return Clip("robot", index, start, start + 10 * 10**9, keyframes=keyframes, transcript=transcript)


if __name__ == "__main__":
    raise SystemExit(main())

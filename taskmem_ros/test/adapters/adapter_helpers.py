"""Shared by the adapter tests: the base-model name, a logits probe and real LoRA artifacts."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

BASE = "taskmem/tiny-qwen3vl"  # the name adapters are made for (a real one would be a hub id)
HIDDEN = 64  # build_tiny_qwen3vl's text hidden size
LAYERS = 2  # build_tiny_qwen3vl's decoder layers


def logits(model: Any, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**enc).logits.clone()


def greedy(model: Any, enc: dict[str, torch.Tensor]) -> list[int]:
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    return out[0].tolist()


def make_lora(tiny_dir: Path, out: Path, *, seed: int, base_model: str = BASE) -> Path:
    """A real peft LoRA on q_proj/v_proj (r=4 keeps it tiny) with random lora_B, saved by peft.

    lora_B initialises to zero (an identity adapter), so it is filled with noise to make the
    adapter change the model's output.
    """
    import peft
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    with warnings.catch_warnings():  # a transformers deprecation peft trips over; not ours
        warnings.simplefilter("ignore", FutureWarning)
        pm = peft.get_peft_model(model, peft.LoraConfig(target_modules=["q_proj", "v_proj"], r=4))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in pm.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen))
    pm.peft_config["default"].base_model_name_or_path = base_model
    with warnings.catch_warnings():  # peft looks for the (made-up) base model's config to diff vocabularies
        warnings.simplefilter("ignore")
        pm.save_pretrained(out)
    return out


def relayer_lora(src: Path, out: Path, *, old: str = "layers.1.", new: str = "layers.5.") -> Path:
    """A copy of a LoRA whose weights name a decoder layer the tiny model does not have."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, out)
    weights = load_file(src / "adapter_model.safetensors")
    save_file({k.replace(old, new): v for k, v in weights.items()}, out / "adapter_model.safetensors")
    return out


def edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def flip_last_byte(path: Path) -> None:
    """Corrupt the tensor payload (it sits at the end of a safetensors file), not the header."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x5A
    path.write_bytes(bytes(data))

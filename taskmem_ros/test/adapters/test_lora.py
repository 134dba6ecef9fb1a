"""LoRA adapters injected into the loaded tiny Qwen3-VL, never reloading the base model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from adapter_helpers import logits, relayer_lora

from taskmem_ros.adapters import AdapterError, IncompatibleAdapter, LoraAdapter, attached_adapter


def test_lora_attach_switch_detach(model: Any, enc: dict[str, Any], lora_a: Path, lora_b: Path) -> None:
    model_id, embed = id(model), model.get_input_embeddings().weight
    base_logits = logits(model, enc)
    a, b = LoraAdapter.load(lora_a), LoraAdapter.load(lora_b)
    assert a.name != b.name and "." not in a.name

    a.attach(model)
    with_a = logits(model, enc)
    assert (with_a - base_logits).abs().max() > 0.1
    with a.suspended():
        assert torch.equal(logits(model, enc), base_logits)
    assert torch.equal(logits(model, enc), with_a)

    a.detach()
    b.attach(model)
    with_b = logits(model, enc)
    assert not torch.equal(with_b, with_a) and not torch.equal(with_b, base_logits)
    b.detach()
    a.attach(model)  # switching back gives exactly A again (weights held in memory)
    assert torch.equal(logits(model, enc), with_a)
    a.detach()

    assert torch.equal(logits(model, enc), base_logits)
    assert not getattr(model, "_hf_peft_config_loaded", False) and attached_adapter(model) is None
    assert id(model) == model_id and model.get_input_embeddings().weight is embed  # never reloaded


def test_lora_weights_survive_directory_removal(model: Any, enc: dict[str, Any], lora_a: Path, tmp_path: Path) -> None:
    import shutil

    copy = shutil.copytree(lora_a, tmp_path / "copy")
    adapter = LoraAdapter.load(copy)
    shutil.rmtree(copy)
    adapter.attach(model)  # what a rollback relies on
    assert not torch.equal(logits(model, enc), _base_logits(model, enc, adapter))
    adapter.detach()


def _base_logits(model: Any, enc: dict[str, Any], adapter: LoraAdapter) -> torch.Tensor:
    with adapter.suspended():
        return logits(model, enc)


def test_incompatible_lora_leaves_model_untouched(
    model: Any, enc: dict[str, Any], lora_a: Path, tmp_path: Path
) -> None:
    base_logits = logits(model, enc)
    bad = LoraAdapter.load(relayer_lora(lora_a, tmp_path / "layer5"))
    with pytest.raises(IncompatibleAdapter, match=r"layers\.5\."):
        bad.attach(model)
    assert not bad.attached and attached_adapter(model) is None
    assert not getattr(model, "peft_config", {})
    assert torch.equal(logits(model, enc), base_logits)

    good = LoraAdapter.load(lora_a)  # the model still takes a good one afterwards
    good.attach(model)
    assert not torch.equal(logits(model, enc), base_logits)
    with pytest.raises(AdapterError, match="already carries adapter"):
        LoraAdapter.load(lora_a).attach(model)
    good.detach()
    assert torch.equal(logits(model, enc), base_logits)


def test_lora_needs_a_transformers_model(lora_a: Path) -> None:
    with pytest.raises(IncompatibleAdapter, match="not a transformers model with PEFT support"):
        LoraAdapter.load(lora_a).attach(torch.nn.Linear(2, 2))

"""Steering adapters on the real tiny Qwen3-VL: they change the output and leave no trace."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from adapter_helpers import BASE, HIDDEN, LAYERS, greedy, logits

from taskmem_ros.adapters import (
    AdapterError,
    IncompatibleAdapter,
    SteeringAdapter,
    attached_adapter,
    decoder_layers,
    save_steering,
)


def _steer(tmp_path: Path, *, layer: int = 1, scale: float = 8.0, n: int = HIDDEN, seed: int = 0) -> SteeringAdapter:
    vec = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    path = tmp_path / f"steer_l{layer}_n{n}_s{seed}.safetensors"
    save_steering(path, vec, base_model=BASE, layer=layer, scale=scale)
    return SteeringAdapter.load(path)


def test_decoder_layers(model: Any) -> None:
    import peft

    layers = decoder_layers(model)
    assert layers is model.model.language_model.layers and len(layers) == LAYERS
    with warnings.catch_warnings():  # a transformers deprecation peft trips over; not ours
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = peft.get_peft_model(model, peft.LoraConfig(target_modules=["q_proj"], r=2))
    assert decoder_layers(wrapped) is layers
    with pytest.raises(AdapterError, match="cannot find decoder layers in Linear"):
        decoder_layers(torch.nn.Linear(2, 2))


def test_steering_changes_output_and_detach_restores_it(model: Any, enc: dict[str, Any], tmp_path: Path) -> None:
    base_logits, base_tokens = logits(model, enc), greedy(model, enc)
    adapter = _steer(tmp_path)
    adapter.attach(model)
    assert adapter.attached and attached_adapter(model) is adapter
    steered = logits(model, enc)
    assert (steered - base_logits).abs().max() > 0.3  # random tiny weights: logits are small
    assert greedy(model, enc) != base_tokens  # generation (with KV cache) is steered too
    with adapter.suspended():
        assert torch.equal(logits(model, enc), base_logits)
        assert greedy(model, enc) == base_tokens
    assert torch.equal(logits(model, enc), steered)  # back on after the suspension
    adapter.detach()
    adapter.detach()  # idempotent
    assert not adapter.attached and attached_adapter(model) is None
    assert torch.equal(logits(model, enc), base_logits)
    assert greedy(model, enc) == base_tokens


def test_scale_and_layer_matter(model: Any, enc: dict[str, Any], tmp_path: Path) -> None:
    outs = []
    for layer, scale in ((0, 8.0), (1, 8.0), (1, 2.0)):
        adapter = _steer(tmp_path, layer=layer, scale=scale)
        adapter.attach(model)
        outs.append(logits(model, enc))
        adapter.detach()
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])


def test_attach_refuses_what_does_not_fit(model: Any, enc: dict[str, Any], tmp_path: Path) -> None:
    base_logits = logits(model, enc)
    with pytest.raises(IncompatibleAdapter, match=r"layer 5, but the model has 2 decoder layers"):
        _steer(tmp_path, layer=5).attach(model)
    with pytest.raises(IncompatibleAdapter, match="hidden size 32, expected 64"):
        _steer(tmp_path, n=32).attach(model)
    assert attached_adapter(model) is None
    assert torch.equal(logits(model, enc), base_logits)  # nothing left hooked

    first, second = _steer(tmp_path, seed=1), _steer(tmp_path, seed=2)
    first.attach(model)
    with pytest.raises(AdapterError, match="already carries adapter"):
        second.attach(model)  # two adapters never stack silently
    first.detach()
    assert torch.equal(logits(model, enc), base_logits)


def test_tuple_returning_layers(tmp_path: Path) -> None:
    """Decoder layers of other transformers versions return (hidden_states, ...) tuples."""

    class TupleLayer(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
            return x * 2, None

    class Stack(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList([TupleLayer(), TupleLayer()])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = layer(x)[0]
            return x

    stack = Stack()
    adapter = _steer(tmp_path, layer=0, scale=1.0, n=4)
    x = torch.zeros(1, 3, 4, dtype=torch.bfloat16)
    adapter.attach(stack)
    out = stack(x)
    assert out.dtype == torch.bfloat16  # the vector is cast to the hidden states' dtype
    assert torch.allclose(out[0, 0].float(), 2 * adapter.vector.to(torch.bfloat16).float(), atol=0.05)
    adapter.detach()
    assert torch.equal(stack(x), x)


def test_moe_model(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText

    from taskmem_ros.llm.tiny import build_tiny_qwen3vl

    moe = AutoModelForImageTextToText.from_pretrained(build_tiny_qwen3vl(tmp_path_factory.mktemp("moe"), moe=True))
    ids = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    base_logits = logits(moe, ids)
    adapter = _steer(tmp_path)
    adapter.attach(moe)
    assert not torch.equal(logits(moe, ids), base_logits)
    adapter.detach()
    assert torch.equal(logits(moe, ids), base_logits)

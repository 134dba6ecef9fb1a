"""AdapterSlot: swaps report previous/active, failures roll back, the lock keeps swaps between batches."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from adapter_helpers import BASE, HIDDEN, LAYERS, edit_json, flip_last_byte, logits, relayer_lora

from taskmem_ros.adapters import (
    AdapterError,
    AdapterSlot,
    BaseModelMismatch,
    ChecksumMismatch,
    IncompatibleAdapter,
    attached_adapter,
    save_steering,
)


def _slot(model: Any) -> AdapterSlot:
    return AdapterSlot(model, base_model=BASE, hidden_size=HIDDEN, num_layers=LAYERS)


def _vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(HIDDEN).astype(np.float32)


def test_swap_reports_previous_and_active(model: Any, enc: dict[str, Any], tmp_path: Path, lora_a: Path) -> None:
    base_logits = logits(model, enc)
    slot = _slot(model)
    assert slot.active is None and slot.adapter_id == ""
    steer = save_steering(tmp_path / "steer.safetensors", _vector(0), base_model=BASE, layer=1, scale=8.0)

    prev, active = slot.swap(str(steer.path), expected_sha256=steer.sha256)
    assert prev is None and active == steer and slot.active == steer and slot.adapter_id == "steer"
    steered = logits(model, enc)
    assert not torch.equal(steered, base_logits)

    prev, active = slot.swap(str(lora_a))
    assert prev == steer and active is not None and active.kind == "lora" and slot.adapter_id == "lora_a"
    with_lora = logits(model, enc)
    assert not torch.equal(with_lora, steered) and not torch.equal(with_lora, base_logits)
    with slot.suspended():
        assert torch.equal(logits(model, enc), base_logits)
    assert torch.equal(logits(model, enc), with_lora)

    prev, active = slot.swap(lora_a)  # re-loading the same adapter is a clean swap too
    assert prev == active and torch.equal(logits(model, enc), with_lora)

    prev, active = slot.swap("")
    assert prev is not None and prev.kind == "lora" and active is None and slot.adapter_id == ""
    assert torch.equal(logits(model, enc), base_logits) and attached_adapter(model) is None
    assert slot.swap("") == (None, None)
    with slot.suspended():  # no adapter: plain base model
        assert torch.equal(logits(model, enc), base_logits)


def _bad_artifacts(tmp_path: Path, lora_a: Path) -> list[tuple[str, str, type[AdapterError], str]]:
    """(path, expected_sha256, error, message) for every way a swap must be refused."""
    good = save_steering(tmp_path / "good.safetensors", _vector(3), base_model=BASE, layer=0, scale=4.0)
    other_base = save_steering(tmp_path / "other.safetensors", _vector(4), base_model="Qwen/Qwen3-VL-8B", layer=0)
    deep = save_steering(tmp_path / "deep.safetensors", _vector(5), base_model=BASE, layer=5)
    corrupt = tmp_path / "corrupt.safetensors"
    shutil.copy(good.path, corrupt)
    flip_last_byte(corrupt)
    lora_other_base = shutil.copytree(lora_a, tmp_path / "lora_other_base")
    edit_json(lora_other_base / "adapter_config.json", base_model_name_or_path="Qwen/Qwen3-VL-8B")
    return [
        (good.path, "f" * 64, ChecksumMismatch, "expected f{64}"),
        (other_base.path, "", BaseModelMismatch, "made for base model 'Qwen/Qwen3-VL-8B'"),
        (deep.path, "", IncompatibleAdapter, "targets layer 5"),
        (str(corrupt), "", IncompatibleAdapter, "corrupted payload"),
        (str(tmp_path / "nowhere.safetensors"), "", IncompatibleAdapter, "does not exist"),
        (str(lora_other_base), "", BaseModelMismatch, "made for base model"),
        # passes verify, fails while attaching, i.e. after the previous adapter was detached
        (str(relayer_lora(lora_a, tmp_path / "lora_layer5")), "", IncompatibleAdapter, r"layers\.5\."),
    ]


@pytest.mark.parametrize("start", ["steering", "lora", "none"])
def test_failed_swap_rolls_back(model: Any, enc: dict[str, Any], tmp_path: Path, lora_a: Path, start: str) -> None:
    slot = _slot(model)
    if start == "steering":
        slot.swap(save_steering(tmp_path / "active.safetensors", _vector(9), base_model=BASE, layer=1, scale=8.0).path)
    elif start == "lora":
        slot.swap(lora_a)
    before_meta, before_logits = slot.active, logits(model, enc)
    for path, sha, error, message in _bad_artifacts(tmp_path, lora_a):
        with pytest.raises(error, match=message):
            slot.swap(path, expected_sha256=sha)
        assert slot.active == before_meta, path
        assert torch.equal(logits(model, enc), before_logits), path
    assert (attached_adapter(model) is None) == (start == "none")


def test_swap_waits_for_the_running_batch(model: Any, tmp_path: Path) -> None:
    slot = _slot(model)
    steer = save_steering(tmp_path / "s.safetensors", _vector(1), base_model=BASE, layer=0)
    in_batch, done = threading.Event(), threading.Event()

    def engine() -> None:
        with slot.lock:  # what the generation engine does around generate()
            in_batch.set()
            done.wait(5)

    t = threading.Thread(target=engine)
    t.start()
    in_batch.wait(5)
    swapper = threading.Thread(target=slot.swap, args=(steer.path,))
    swapper.start()
    swapper.join(0.3)
    assert swapper.is_alive() and slot.active is None  # blocked while the batch runs
    done.set()
    swapper.join(5)
    t.join(5)
    assert slot.active == steer

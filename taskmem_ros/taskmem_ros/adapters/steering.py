"""The TaskMem Phase Two steering adapter: ``scale * vector`` added to one decoder layer's output.

It is a forward hook, so attaching and detaching never touch the base weights: detached, the
model computes bit-for-bit what it did before, and one loaded model serves both the adapted
policy and the base answerer (``suspended()``).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from taskmem_ros.fsutil import atomic_write

from .artifact import (
    STEERING_FORMAT,
    STEERING_TENSOR,
    STEERING_VERSION,
    AdapterMeta,
    read_steering,
    vector_sha256,
)
from .base import Adapter, decoder_layers, model_hidden_size
from .errors import AdapterError, IncompatibleAdapter, require


def _as_float32(vector: Any) -> np.ndarray:
    if hasattr(vector, "detach"):  # torch.Tensor, without importing torch here
        vector = vector.detach().to("cpu").float().numpy()
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1 or arr.size == 0:
        raise AdapterError(f"a steering vector must be non-empty and 1-D, got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise AdapterError("a steering vector must be finite, got NaN/inf values")
    return np.ascontiguousarray(arr, dtype="<f4")


def save_steering(
    path: str | Path,
    vector: Any,
    *,
    base_model: str,
    layer: int,
    scale: float = 1.0,
    adapter_id: str = "",
    extra: dict[str, Any] | None = None,
) -> AdapterMeta:
    """Write a steering adapter (a torch tensor or numpy vector) and return its metadata as read back."""
    p = Path(path)
    if p.suffix != ".safetensors":
        raise AdapterError(f"steering adapters are .safetensors files, got {str(p)!r}")
    if not base_model:
        raise AdapterError("base_model must name the model the vector was trained for, got ''")
    if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or layer < 0:
        raise AdapterError(f"layer must be a decoder layer index >= 0, got {layer!r}")
    if not math.isfinite(float(scale)):
        raise AdapterError(f"scale must be a finite number, got {scale!r}")
    vec = _as_float32(vector)
    try:
        extra_json = json.dumps(extra or {}, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"extra metadata must be JSON-serialisable: {exc}") from exc
    metadata = {
        "format": STEERING_FORMAT,
        "version": STEERING_VERSION,
        "base_model": base_model,
        "layer": str(int(layer)),
        "scale": repr(float(scale)),
        "hidden_size": str(vec.size),
        "adapter_id": adapter_id or p.stem,
        "vector_sha256": vector_sha256(vec),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "extra": extra_json,
    }
    data = require("safetensors.numpy").save({STEERING_TENSOR: vec}, metadata=metadata)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, data)
    return read_steering(p)[0]


class SteeringAdapter(Adapter):
    """A steering vector held in memory; ``attach`` hooks it onto the chosen decoder layer."""

    def __init__(self, meta: AdapterMeta, vector: np.ndarray) -> None:
        if meta.kind != "steering" or meta.layer is None or meta.scale is None:
            raise AdapterError(f"SteeringAdapter needs steering metadata, got kind={meta.kind!r}")
        super().__init__(meta)
        torch = require("torch")
        self.vector = torch.from_numpy(np.array(vector, dtype=np.float32))
        self._handle: Any = None
        self._cache: dict[tuple[Any, Any], Any] = {}

    @classmethod
    def load(cls, path: str | Path) -> SteeringAdapter:
        meta, vec = read_steering(path)
        return cls(meta, vec)

    def _delta(self, hidden: Any) -> Any:
        key = (hidden.dtype, hidden.device)
        delta = self._cache.get(key)
        if delta is None:
            delta = (self.vector * float(self.meta.scale or 0.0)).to(device=hidden.device, dtype=hidden.dtype)
            self._cache[key] = delta
        return delta

    def _hook(self, module: Any, args: Any, output: Any) -> Any:
        if not self._enabled:
            return None
        torch = require("torch")
        if isinstance(output, torch.Tensor):
            return output + self._delta(output)
        if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
            return type(output)([output[0] + self._delta(output[0]), *output[1:]])
        raise IncompatibleAdapter(
            f"steering adapter {self.meta.adapter_id!r}: decoder layer {self.meta.layer} returned "
            f"{type(output).__name__}, expected a tensor or a tuple starting with the hidden states"
        )

    def _attach(self, model: Any) -> None:
        layers = decoder_layers(model)
        layer = int(self.meta.layer or 0)
        if not 0 <= layer < len(layers):
            raise IncompatibleAdapter(
                f"steering adapter {self.meta.adapter_id!r} targets layer {layer}, but the model has "
                f"{len(layers)} decoder layers (expected 0..{len(layers) - 1})"
            )
        hidden = model_hidden_size(model)
        if hidden is not None and hidden != self.vector.numel():
            raise IncompatibleAdapter(
                f"steering adapter {self.meta.adapter_id!r} has hidden size {self.vector.numel()}, "
                f"expected {hidden} (the model's)"
            )
        self._cache.clear()
        self._handle = layers[layer].register_forward_hook(self._hook)

    def _detach(self, model: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._cache.clear()

    def _set_enabled(self, model: Any, enabled: bool) -> None:
        pass  # the hook reads self._enabled on every call

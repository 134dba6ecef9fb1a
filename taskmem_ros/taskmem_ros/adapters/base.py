"""What steering and LoRA adapters share: attach/detach bookkeeping and temporary suspension.

One model carries at most one TaskMem adapter at a time (the model is marked while one is
attached), so two adapters can never stack silently; ``AdapterSlot`` swaps them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .artifact import AdapterMeta
from .errors import AdapterError, require

_MARK = "_taskmem_adapter"  # attribute on the model naming the attached adapter

# Where decoder layers live, most specific first (so a VLM's vision blocks are never picked).
_LAYER_PATHS = (
    "model.language_model.layers",  # Qwen3-VL / Qwen3-VL-MoE ...ForConditionalGeneration
    "language_model.layers",  # Qwen3-VL ...Model
    "model.layers",  # causal LMs (Qwen3, Llama)
    "layers",  # bare text models
)


def decoder_layers(model: Any) -> Any:
    """The language model's decoder layers (a ModuleList), also through a peft PeftModel wrapper."""
    module_list = require("torch").nn.ModuleList
    root = model
    get_base = getattr(root, "get_base_model", None)
    if callable(get_base):  # peft.PeftModel -> the transformers model inside
        root = get_base()
    for path in _LAYER_PATHS:
        obj = root
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and isinstance(obj, module_list) and len(obj) > 0:
            return obj
    raise AdapterError(f"cannot find decoder layers in {type(model).__name__}; looked for {', '.join(_LAYER_PATHS)}")


def model_hidden_size(model: Any) -> int | None:
    """The text hidden size from the model config (``text_config`` for VLMs), if it says."""
    cfg = getattr(model, "config", None)
    text = getattr(cfg, "text_config", None) or cfg
    size = getattr(text, "hidden_size", None)
    return int(size) if isinstance(size, int) else None


def attached_adapter(model: Any) -> Adapter | None:
    """The TaskMem adapter currently attached to ``model``, if any."""
    found = getattr(model, "__dict__", {}).get(_MARK)
    return found if isinstance(found, Adapter) else None


class Adapter(ABC):
    """A loaded (in-memory) adapter that can be attached to and detached from a loaded model."""

    def __init__(self, meta: AdapterMeta) -> None:
        self.meta = meta
        self._model: Any = None
        self._enabled = True

    @property
    def attached(self) -> bool:
        return self._model is not None

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        if self._model is not None:
            self._set_enabled(self._model, self._enabled)

    def attach(self, model: Any) -> None:
        """Apply the adapter to ``model``; on failure the model is left exactly as it was."""
        other = attached_adapter(model)
        if other is self:
            return
        if self._model is not None:
            raise AdapterError(f"adapter {self.meta.adapter_id!r} is already attached to another model")
        if other is not None:
            raise AdapterError(
                f"the model already carries adapter {other.meta.adapter_id!r}; detach it before attaching "
                f"{self.meta.adapter_id!r}"
            )
        self._attach(model)
        model.__dict__[_MARK] = self
        self._model = model
        self._enabled = True

    def detach(self) -> None:
        """Remove the adapter; the model computes exactly what the base model does. Idempotent."""
        model = self._model
        if model is None:
            return
        self._detach(model)
        model.__dict__.pop(_MARK, None)
        self._model = None

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Run the base model for a while (e.g. the answerer) without detaching."""
        before = self._enabled
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = before

    @abstractmethod
    def _attach(self, model: Any) -> None: ...

    @abstractmethod
    def _detach(self, model: Any) -> None: ...

    @abstractmethod
    def _set_enabled(self, model: Any, enabled: bool) -> None: ...

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return f"{type(self).__name__}({self.meta.adapter_id!r}, {self.meta.kind}, {state})"

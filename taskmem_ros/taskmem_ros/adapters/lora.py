"""LoRA adapters (peft ``save_pretrained`` directories) injected into the already-loaded model.

Injection and weight loading go through transformers' PEFT integration
(``model.load_adapter(peft_config=..., adapter_state_dict=...)``), which maps checkpoint keys
onto transformers v5 module layouts; the base model is never reloaded. Activation, suspension
and deletion use peft directly: transformers 5.24's ``set_adapter``/``disable_adapters``/
``delete_adapter`` refuse peft < 0.22, and what they do is exactly these peft calls.

Weights are read into memory at ``load`` (from the same bytes that were checksummed), so
re-attaching during a rollback never depends on the directory still being there.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from .artifact import AdapterMeta, read_lora
from .base import Adapter
from .errors import AdapterError, IncompatibleAdapter, require


def _tuner_layers(model: Any) -> list[Any]:
    tuners = require("peft.tuners.tuners_utils")
    utils = require("peft.utils")
    kinds = (tuners.BaseTunerLayer, utils.ModulesToSaveWrapper)
    return [m for m in model.modules() if isinstance(m, kinds)]


def _delete(model: Any, name: str) -> None:
    """Remove one peft adapter from a transformers model (what ``model.delete_adapter`` does)."""
    configs = getattr(model, "peft_config", None)
    if not isinstance(configs, dict) or name not in configs:
        return
    prefix = f"{configs[name].peft_type.value.lower()}_"
    require("peft.functional").delete_adapter(model, adapter_name=name, prefix=prefix)
    configs.pop(name, None)
    if not configs:  # last one gone: the model is a plain transformers model again
        del model.peft_config
        model._hf_peft_config_loaded = False


class LoraAdapter(Adapter):
    """A LoRA held in memory (peft config + tensors); ``attach`` injects it under a unique name."""

    def __init__(self, meta: AdapterMeta, config: dict[str, Any], state_dict: dict[str, Any]) -> None:
        if meta.kind != "lora":
            raise AdapterError(f"LoraAdapter needs LoRA metadata, got kind={meta.kind!r}")
        super().__init__(meta)
        peft = require("peft")
        where = f"LoRA adapter {meta.path!r}"
        try:
            self.peft_config = peft.PeftConfig.from_peft_type(**peft.PeftConfig.check_kwargs(**config))
        except Exception as exc:  # peft raises TypeError/ValueError/KeyError for bad configs
            raise IncompatibleAdapter(f"{where}: adapter_config.json is not a valid peft config ({exc})") from exc
        self.state_dict = state_dict
        # peft module keys cannot contain dots; the sha prefix keeps two versions of one id apart
        self.name = "taskmem_" + re.sub(r"\W", "_", f"{meta.adapter_id}_{meta.sha256[:12]}")

    @classmethod
    def load(cls, path: str | Path) -> LoraAdapter:
        meta, config, weights = read_lora(path)
        st_torch = require("safetensors.torch")
        try:
            state_dict = st_torch.load(weights)
        except Exception as exc:  # safetensors' own error types for malformed payloads
            raise IncompatibleAdapter(f"LoRA adapter {meta.path!r}: weights are not readable ({exc})") from exc
        if not state_dict:
            raise IncompatibleAdapter(f"LoRA adapter {meta.path!r}: adapter_model.safetensors holds no tensors")
        return cls(meta, config, state_dict)

    def _attach(self, model: Any) -> None:
        where = f"LoRA adapter {self.meta.adapter_id!r}"
        if not callable(getattr(model, "load_adapter", None)) or not hasattr(model, "_hf_peft_config_loaded"):
            raise IncompatibleAdapter(f"{where}: {type(model).__name__} is not a transformers model with PEFT support")
        if self.name in (getattr(model, "peft_config", None) or {}):
            raise AdapterError(f"{where}: the model already holds a peft adapter named {self.name!r}")
        try:
            info = model.load_adapter(
                adapter_name=self.name,
                peft_config=copy.deepcopy(self.peft_config),
                adapter_state_dict=dict(self.state_dict),
            )
            problems = {
                "missing": sorted(getattr(info, "missing_keys", None) or ()),
                "unexpected": sorted(getattr(info, "unexpected_keys", None) or ()),
                "mismatched": sorted(str(k) for k in getattr(info, "mismatched_keys", None) or ()),
            }
            problems = {k: v for k, v in problems.items() if v}
            if problems:
                shown = {k: v[:4] + (["..."] if len(v) > 4 else []) for k, v in problems.items()}
                raise IncompatibleAdapter(
                    f"{where}: its weights do not match the model's modules ({shown}); expected a LoRA "
                    f"trained on {self.meta.base_model!r} with this layer count and hidden size"
                )
            require("peft.functional").set_adapter(model, self.name, inference_mode=True)
        except BaseException as exc:
            _delete(model, self.name)  # leave the model as it was
            if isinstance(exc, AdapterError) or not isinstance(exc, Exception):
                raise
            raise IncompatibleAdapter(f"{where}: cannot be injected into the model ({exc})") from exc

    def _detach(self, model: Any) -> None:
        if not self._enabled:
            self._set_enabled(model, True)
        _delete(model, self.name)

    def _set_enabled(self, model: Any, enabled: bool) -> None:
        for module in _tuner_layers(model):
            module.enable_adapters(enabled)

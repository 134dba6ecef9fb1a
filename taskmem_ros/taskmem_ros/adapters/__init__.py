"""Phase Two adapters: steering vectors and LoRAs applied to the loaded policy model.

``read_adapter``/``verify`` check an artifact (torch-free); ``SteeringAdapter``/``LoraAdapter``
attach to a loaded transformers model without reloading it; ``AdapterSlot`` owns the one
active adapter and swaps it atomically. torch, peft and safetensors are imported on first use
(``pip install 'taskmem_ros[llm]'``).
"""

from .artifact import AdapterMeta, adapter_sha256, read_adapter, verify
from .base import Adapter, attached_adapter, decoder_layers
from .errors import AdapterError, BaseModelMismatch, ChecksumMismatch, IncompatibleAdapter
from .lora import LoraAdapter
from .slot import AdapterSlot, open_adapter
from .steering import SteeringAdapter, save_steering

__all__ = [
    "Adapter",
    "AdapterError",
    "AdapterMeta",
    "AdapterSlot",
    "BaseModelMismatch",
    "ChecksumMismatch",
    "IncompatibleAdapter",
    "LoraAdapter",
    "SteeringAdapter",
    "adapter_sha256",
    "attached_adapter",
    "decoder_layers",
    "open_adapter",
    "read_adapter",
    "save_steering",
    "verify",
]

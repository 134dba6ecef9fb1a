"""What the policy and the answerer need from a chat model, whoever serves it.

Messages use the OpenAI/transformers chat layout. A clip's keyframes travel as one
``{"type": "video", "frames": [...], "timestamps_s": [...]}`` part (RGB uint8 arrays, seconds
from clip start): the transformers engine turns it into Qwen3-VL video input with
timestamps, the OpenAI engine into timestamped JPEG images (what vLLM accepts for Qwen3-VL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Message = dict[str, Any]


class EngineError(RuntimeError):
    """The model could not be loaded or could not answer (a clear message, never a hang)."""


@dataclass
class ChatRequest:
    messages: list[Message]
    max_new_tokens: int = 256
    temperature: float = 0.0
    json_schema: dict[str, Any] | None = None  # structured output where the server supports it
    use_adapter: bool = True  # False: answer with the base model even while an adapter is active
    enable_thinking: bool = False
    ignore_eos: bool = False  # benchmarks: always generate max_new_tokens (vLLM's ignore_eos)


@dataclass
class Generation:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    error: str = ""


@dataclass
class AdapterState:
    """The adapter an engine currently applies ("" = base model)."""

    adapter_id: str = ""
    kind: str = ""  # "steering" | "lora" | ""
    path: str = ""
    sha256: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class ChatEngine(ABC):
    """Generates chat completions for a batch of requests, in order."""

    model_id: str = "unknown"

    @property
    def adapter(self) -> AdapterState:
        return AdapterState()

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """One Generation per request; a failed request gives ``finish_reason="error"``
        instead of raising, so one bad clip does not sink its batch."""

    def close(self) -> None:  # noqa: B027 - optional
        """Free the model / connection pool."""


def video_part(frames: Sequence[np.ndarray], timestamps_s: Sequence[float]) -> dict[str, Any]:
    if len(frames) != len(timestamps_s):
        raise ValueError(f"{len(frames)} frames but {len(timestamps_s)} timestamps")
    return {"type": "video", "frames": list(frames), "timestamps_s": [float(t) for t in timestamps_s]}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def subsample(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n), first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})

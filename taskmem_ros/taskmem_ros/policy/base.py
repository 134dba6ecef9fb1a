"""The policy interface every backend implements (perception baseline, Qwen3-VL via an engine)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from taskmem_ros.types import Clip, MemoryDraft, PolicyContext


class MemorizationPolicy(ABC):
    """Writes short textual memories for a clip.

    Batched on purpose: model backends amortise a forward pass over several clips, and
    the memorizer hands over whatever clips are pending.
    """

    model_id: str = "unknown"
    # Clips handed over per call. 1 for policies that gain nothing from batching, so each clip
    # sees the memories of the one before it in its context.
    batch_size: int = 1

    @property
    def adapter_id(self) -> str:
        """Adapter currently shaping the policy ("" for the base model)."""
        return ""

    @abstractmethod
    def memorize_batch(self, clips: Sequence[Clip], contexts: Sequence[PolicyContext]) -> list[list[MemoryDraft]]:
        """One list of drafts per clip, in order."""

    def memorize(self, clip: Clip, context: PolicyContext | None = None) -> list[MemoryDraft]:
        return self.memorize_batch([clip], [context or PolicyContext()])[0]

    @property
    def active_adapter(self) -> Any:
        """The applied ``adapters.AdapterMeta``, None for the base model."""
        return None

    def load_adapter(self, path: str, sha256: str = "") -> tuple[Any, Any]:
        """Swap the adapter; (previous, active) AdapterMeta or None. Policies without
        adapters refuse with AdapterError (the service reports it, nothing changes)."""
        from taskmem_ros.adapters import AdapterError

        if not path:
            return None, None
        raise AdapterError(f"policy {self.model_id!r} takes no adapters; use policy.backend='qwen3vl'")

    def close(self) -> None:  # noqa: B027 - optional hook, most policies hold nothing to free
        """Free models/sessions (called from the lifecycle node's on_cleanup)."""

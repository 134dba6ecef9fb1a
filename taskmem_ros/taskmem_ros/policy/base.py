"""The policy interface every backend implements (perception baseline now, Qwen3-VL next)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from taskmem_ros.config import PolicyConfig
from taskmem_ros.types import Clip, MemoryDraft, PolicyContext


class MemorizationPolicy(ABC):
    """Writes short textual memories for a clip.

    Batched on purpose: model backends amortise a forward pass over several clips, and
    the memorizer hands over whatever clips are pending.
    """

    model_id: str = "unknown"

    @property
    def adapter_id(self) -> str:
        """Adapter currently shaping the policy ("" for the base model)."""
        return ""

    @abstractmethod
    def memorize_batch(self, clips: Sequence[Clip], contexts: Sequence[PolicyContext]) -> list[list[MemoryDraft]]:
        """One list of drafts per clip, in order."""

    def memorize(self, clip: Clip, context: PolicyContext | None = None) -> list[MemoryDraft]:
        return self.memorize_batch([clip], [context or PolicyContext()])[0]

    def close(self) -> None:  # noqa: B027 - optional hook, most policies hold nothing to free
        """Free models/sessions (called from the lifecycle node's on_cleanup)."""


def make_policy(cfg: PolicyConfig) -> MemorizationPolicy:
    if cfg.backend == "perception":
        from taskmem_ros.policy.perception.policy import PerceptionPolicy

        return PerceptionPolicy(cfg)
    raise ValueError(f"policy.backend={cfg.backend!r} is not available")

"""Answering tasks from memory only: the CPU retrieval baseline or an LLM over retrieved memories."""

from __future__ import annotations

from typing import Protocol

from taskmem_ros.answer.retrieval import INSUFFICIENT, MemorySearch, RetrievalAnswerer, calibrate_threshold
from taskmem_ros.config import TaskMemConfig
from taskmem_ros.types import Answer


class Answerer(Protocol):
    def answer(
        self, question: str, *, as_of_ns: int, choices: list[str] | None = None, stream: str | None = None
    ) -> Answer: ...


def make_answerer(cfg: TaskMemConfig, store: MemorySearch) -> Answerer:
    """The answerer ``answer.backend`` names (model backends share the policy's engine)."""
    if cfg.answer.backend == "retrieval":
        return RetrievalAnswerer(store, cfg.answer)
    from taskmem_ros.answer.llm_answerer import LLMAnswerer
    from taskmem_ros.llm import make_engine

    return LLMAnswerer(store, cfg.answer, make_engine(cfg, cfg.answer.backend))


def close_answerer(answerer: object) -> None:
    close = getattr(answerer, "close", None)
    if callable(close):
        close()


__all__ = ["INSUFFICIENT", "Answerer", "RetrievalAnswerer", "calibrate_threshold", "close_answerer", "make_answerer"]

"""What the task server does for one request, ROS-free: as-of memory queries, which questions are
refused, and logging an answered task for Phase Two."""

from __future__ import annotations

from typing import Any

from taskmem_ros.store import SEARCH_MODES, EpisodicStore
from taskmem_ros.types import Answer, MemoryRecord


class QueryError(ValueError):
    """A query that cannot mean anything (unknown mode, empty window): answered, not raised further."""


def query_memory(
    store: EpisodicStore,
    text: str,
    *,
    as_of_ns: int,
    start_ns: int | None,
    end_ns: int | None,
    limit: int,
    mode: str = "",
    stream: str | None = None,
) -> tuple[list[MemoryRecord], list[float]]:
    """Hybrid/fts/vector search as of a time, or the newest-first timeline when ``text`` is blank.
    ``stream=None`` spans every stream of a fleet store. StoreError passes through."""
    mode = mode or "hybrid"
    if mode not in SEARCH_MODES:
        raise QueryError(f"mode={mode!r}; expected one of {SEARCH_MODES}")
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise QueryError(f"window_start ({start_ns} ns) is after window_end ({end_ns} ns): the window is empty")
    window: dict[str, Any] = {"as_of_ns": as_of_ns, "start_ns": start_ns, "end_ns": end_ns, "limit": limit}
    if text.strip():
        hits = store.search(text, mode=mode, stream=stream, **window)
        return [h.record for h in hits], [float(h.score) for h in hits]
    records = store.timeline(stream, newest_first=True, **window)
    return records, [1.0] * len(records)


def refusal(question: str, max_chars: int) -> str:
    """Why a question is not answered ("" = it is)."""
    if not question.strip():
        return "empty question"
    if len(question) > max_chars:
        return f"question of {len(question)} characters is longer than max_question_chars={max_chars}"
    return ""


def log_answered(
    store: EpisodicStore,
    question: str,
    asked_at_ns: int,
    choices: list[str] | None,
    answer: Answer,
    latency_s: float,
    stream: str,
    is_eval: bool,
) -> int:
    """Every task is logged: Phase Two learns from them (evaluation ones flagged). StoreError passes."""
    return store.log_task(
        question=question,
        asked_at_ns=asked_at_ns,
        choices=choices,
        answer=answer.text,
        abstained=answer.abstained,
        choice_index=answer.choice_index,
        confidence=answer.confidence,
        evidence_ids=answer.evidence_ids,
        latency_s=latency_s,
        stream=stream,
        is_eval=is_eval,
    )

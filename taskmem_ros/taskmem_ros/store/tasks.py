"""Task log and adapter registry: what was asked of memory, and which adapters shaped it.

Kept apart from the memory tables' code; EpisodicStore mixes this in, so the public API
stays one object (``store.log_task(...)``, ``store.register_adapter(...)``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import Connection, insert, select, update

from taskmem_ros.store.errors import StoreError
from taskmem_ros.store.models import Adapter, Stream, Task
from taskmem_ros.types import Answer

_S = cast(sa.Table, Stream.__table__)
_T = cast(sa.Table, Task.__table__)
_A = cast(sa.Table, Adapter.__table__)


@dataclass(frozen=True)
class TaskRecord:
    """A logged task (question) as read back from the store."""

    id: int
    question: str
    asked_at_ns: int
    stream: str | None
    choices: list[str] | None
    answer: str
    choice_index: int | None
    abstained: bool
    confidence: float
    evidence_ids: list[int]
    outcome: str | None
    latency_s: float
    is_eval: bool
    created_ns: int


@dataclass(frozen=True)
class AdapterRecord:
    """A registered policy adapter."""

    adapter_id: str
    kind: str
    base_model: str
    path: str
    sha256: str
    created_ns: int
    metrics: dict[str, Any] = field(default_factory=dict)
    active: bool = False


class TaskLogMixin:
    """Tasks and adapters; needs the host's transaction helper and stream lookup."""

    _path: str

    def _tx(self, what: str, *, write: bool) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _stream_id(self, conn: Connection, name: str, *, create: bool) -> int | None:
        raise NotImplementedError

    @staticmethod
    def _check_stream(stream: Any) -> str:
        if not isinstance(stream, str) or not stream.strip():
            raise ValueError(f"stream={stream!r} is invalid; expected a non-empty name")
        return stream

    # -- tasks ---------------------------------------------------------------------------------
    def log_task(
        self,
        question: str,
        *,
        asked_at_ns: int,
        answer: str | Answer = "",
        abstained: bool | None = None,
        evidence_ids: Sequence[int] | None = None,
        choices: Sequence[str] | None = None,
        choice_index: int | None = None,
        confidence: float | None = None,
        latency_s: float | None = None,
        stream: str | None = None,
        is_eval: bool = False,
        outcome: str | bool | None = None,
        created_ns: int | None = None,
    ) -> int:
        """Record a task and its answer; pass an ``Answer`` or its fields. Returns the task id.
        ``created_ns`` keeps the original time when a task is copied from another store."""
        if isinstance(answer, Answer):
            text = answer.text
            abstained = answer.abstained if abstained is None else abstained
            evidence_ids = answer.evidence_ids if evidence_ids is None else evidence_ids
            choice_index = answer.choice_index if choice_index is None else choice_index
            confidence = answer.confidence if confidence is None else confidence
            latency_s = answer.latency_s if latency_s is None else latency_s
        else:
            text = str(answer)
        row = {
            "question": str(question),
            "asked_at_ns": int(asked_at_ns),
            "choices": None if choices is None else [str(c) for c in choices],
            "answer": text,
            "choice_index": None if choice_index is None else int(choice_index),
            "abstained": bool(abstained),
            "confidence": float(confidence or 0.0),
            "evidence_ids": [int(i) for i in (evidence_ids or [])],
            "outcome": None if outcome is None else _outcome(outcome),
            "latency_s": float(latency_s or 0.0),
            "is_eval": bool(is_eval),
            "created_ns": time.time_ns() if created_ns is None else int(created_ns),
        }
        with self._tx("log_task", write=True) as conn:
            row["stream_id"] = (
                None if stream is None else self._stream_id(conn, self._check_stream(stream), create=True)
            )
            tid = conn.execute(insert(_T).values(**row).returning(_T.c.id)).scalar()
        return int(tid or 0)

    def update_task_outcome(self, task_id: int, outcome: str | bool) -> None:
        """Set the judged outcome of a task ("correct", "incorrect", ... or a bool)."""
        value = _outcome(outcome)
        with self._tx("update_task_outcome", write=True) as conn:
            n = conn.execute(update(_T).where(_T.c.id == int(task_id)).values(outcome=value)).rowcount
        if not n:
            raise StoreError(f"no task with id {task_id}", path=self._path)

    def tasks(
        self, *, stream: str | None = None, is_eval: bool | None = None, limit: int | None = None
    ) -> list[TaskRecord]:
        """Logged tasks, oldest first."""
        q = select(
            _T.c.id,
            _T.c.question,
            _T.c.asked_at_ns,
            _S.c.name,
            _T.c.choices,
            _T.c.answer,
            _T.c.choice_index,
            _T.c.abstained,
            _T.c.confidence,
            _T.c.evidence_ids,
            _T.c.outcome,
            _T.c.latency_s,
            _T.c.is_eval,
            _T.c.created_ns,
        ).outerjoin(_S, _S.c.id == _T.c.stream_id)
        if stream is not None:
            q = q.where(_S.c.name == stream)
        if is_eval is not None:
            q = q.where(_T.c.is_eval == bool(is_eval))
        q = q.order_by(_T.c.asked_at_ns, _T.c.id)
        if limit is not None:
            q = q.limit(int(limit))
        with self._tx("tasks", write=False) as conn:
            return [
                TaskRecord(
                    id=int(r[0]),
                    question=r[1],
                    asked_at_ns=int(r[2]),
                    stream=r[3],
                    choices=r[4],
                    answer=r[5],
                    choice_index=r[6],
                    abstained=bool(r[7]),
                    confidence=float(r[8]),
                    evidence_ids=[int(i) for i in r[9] or []],
                    outcome=r[10],
                    latency_s=float(r[11]),
                    is_eval=bool(r[12]),
                    created_ns=int(r[13]),
                )
                for r in conn.execute(q)
            ]

    # -- adapters ------------------------------------------------------------------------------
    def register_adapter(
        self,
        adapter_id: str,
        *,
        kind: str,
        base_model: str = "",
        path: str = "",
        sha256: str = "",
        metrics: dict[str, Any] | None = None,
        active: bool = False,
        created_ns: int | None = None,
    ) -> AdapterRecord:
        """Insert or update an adapter; ``active=True`` deactivates the others of its kind."""
        if not isinstance(adapter_id, str) or not adapter_id.strip():
            raise ValueError(f"adapter_id={adapter_id!r} is invalid; expected a non-empty string")
        if not isinstance(kind, str) or not kind.strip():
            raise ValueError(f"kind={kind!r} is invalid; expected a non-empty string")
        values = {
            "kind": kind,
            "base_model": base_model,
            "path": str(path),
            "sha256": sha256,
            "metrics": dict(metrics or {}),
            "active": bool(active),
            "created_ns": int(created_ns) if created_ns is not None else time.time_ns(),
        }
        with self._tx("register_adapter", write=True) as conn:
            if active:
                conn.execute(update(_A).where(_A.c.kind == kind).values(active=False))
            exists = conn.execute(select(_A.c.id).where(_A.c.adapter_id == adapter_id)).scalar()
            if exists is None:
                conn.execute(insert(_A).values(adapter_id=adapter_id, **values))
            else:
                conn.execute(update(_A).where(_A.c.id == exists).values(**values))
        return AdapterRecord(adapter_id=adapter_id, **values)  # type: ignore[arg-type]

    def set_active_adapter(self, adapter_id: str) -> None:
        with self._tx("set_active_adapter", write=True) as conn:
            kind = conn.execute(select(_A.c.kind).where(_A.c.adapter_id == adapter_id)).scalar()
            if kind is None:
                raise StoreError(f"no adapter {adapter_id!r}", path=self._path)
            conn.execute(update(_A).where(_A.c.kind == kind).values(active=_A.c.adapter_id == adapter_id))

    def deactivate_adapters(self) -> None:
        """No adapter is active (the policy runs the base model)."""
        with self._tx("deactivate_adapters", write=True) as conn:
            conn.execute(update(_A).values(active=False))

    def adapters(self, kind: str | None = None, *, active_only: bool = False) -> list[AdapterRecord]:
        q = select(
            _A.c.adapter_id,
            _A.c.kind,
            _A.c.base_model,
            _A.c.path,
            _A.c.sha256,
            _A.c.created_ns,
            _A.c.metrics,
            _A.c.active,
        )
        if kind is not None:
            q = q.where(_A.c.kind == kind)
        if active_only:
            q = q.where(_A.c.active.is_(True))
        with self._tx("adapters", write=False) as conn:
            return [
                AdapterRecord(r[0], r[1], r[2], r[3], r[4], int(r[5]), dict(r[6] or {}), bool(r[7]))
                for r in conn.execute(q.order_by(_A.c.created_ns, _A.c.id))
            ]

    def active_adapter(self, kind: str) -> AdapterRecord | None:
        found = self.adapters(kind, active_only=True)
        return found[-1] if found else None


def _outcome(value: str | bool) -> str:
    if isinstance(value, bool):
        return "correct" if value else "incorrect"
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise ValueError(f"outcome={value!r} is invalid; expected a bool or a label of 1-64 characters")
    return value.strip()

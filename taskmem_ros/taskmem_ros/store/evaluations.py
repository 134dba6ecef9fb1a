"""Streaming-benchmark state kept in the store itself, so a run is resumable wherever the
memory is: the run's settings, each stream's progress, and every graded answer.

EpisodicStore mixes this in (``store.eval_run(...)``, ``store.record_eval_answer(...)``).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import Connection, insert, select, update

from taskmem_ros.store.errors import StoreError
from taskmem_ros.store.models import EvalAnswer, EvalRun, EvalStream

_R = cast(sa.Table, EvalRun.__table__)
_ST = cast(sa.Table, EvalStream.__table__)
_AN = cast(sa.Table, EvalAnswer.__table__)


@dataclass(frozen=True)
class EvalStreamState:
    status: str  # "started" | "done"
    memory_stream: str
    attempts: int
    stats: dict[str, Any]


class EvalLogMixin:
    _path: str

    def _tx(self, what: str, *, write: bool) -> AbstractContextManager[Connection]:  # provided by EpisodicStore
        raise NotImplementedError

    def eval_run(self, name: str, settings: dict[str, Any], *, resume: bool = True) -> int:
        """The id of run ``name``, created with ``settings``. Resuming a run whose recorded
        settings differ is refused: its answers would mix two configurations."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"run name {name!r} is invalid; expected non-empty text")
        with self._tx("eval_run", write=True) as conn:
            row = conn.execute(select(_R.c.id, _R.c.settings).where(_R.c.name == name)).first()
            if row is None:
                values = {"name": name, "settings": settings, "created_ns": time.time_ns()}
                return int(conn.execute(insert(_R).values(**values)).inserted_primary_key[0])  # type: ignore[index]
            if not resume:
                raise StoreError(f"evaluation run {name!r} already exists; pick another --run name", path=self._path)
            if dict(row[1] or {}) != settings:
                before = dict(row[1] or {})
                changed = sorted(k for k in set(settings) | set(before) if settings.get(k) != before.get(k))
                raise StoreError(
                    f"evaluation run {name!r} was started with other settings ({', '.join(changed)}); "
                    "resume it with the same settings or start a new run",
                    path=self._path,
                )
            return int(row[0])

    def eval_stream_state(self, run_id: int, dataset: str, stream: str) -> EvalStreamState | None:
        q = select(_ST.c.status, _ST.c.memory_stream, _ST.c.attempts, _ST.c.stats).where(
            _ST.c.run_id == run_id, _ST.c.dataset == dataset, _ST.c.stream == stream
        )
        with self._tx("eval_stream_state", write=False) as conn:
            row = conn.execute(q).first()
        return None if row is None else EvalStreamState(row[0], row[1], int(row[2]), dict(row[3] or {}))

    def set_eval_stream(
        self,
        run_id: int,
        dataset: str,
        stream: str,
        *,
        status: str,
        memory_stream: str,
        attempts: int,
        stats: dict[str, Any] | None = None,
    ) -> None:
        if status not in ("started", "done"):
            raise ValueError(f"status={status!r} is invalid; expected 'started' or 'done'")
        values = {
            "status": status,
            "memory_stream": memory_stream,
            "attempts": int(attempts),
            "stats": dict(stats or {}),
            "updated_ns": time.time_ns(),
        }
        key = (_ST.c.run_id == run_id, _ST.c.dataset == dataset, _ST.c.stream == stream)
        with self._tx("set_eval_stream", write=True) as conn:
            if conn.execute(update(_ST).where(*key).values(**values)).rowcount == 0:
                conn.execute(insert(_ST).values(run_id=run_id, dataset=dataset, stream=stream, **values))

    def record_eval_answer(
        self, run_id: int, dataset: str, qid: str, result: dict[str, Any], task_id: int | None = None
    ) -> None:
        """Insert or replace the graded answer of one question."""
        key = (_AN.c.run_id == run_id, _AN.c.dataset == dataset, _AN.c.qid == qid)
        values = {"result": result, "task_id": task_id, "created_ns": time.time_ns()}
        with self._tx("record_eval_answer", write=True) as conn:
            if conn.execute(update(_AN).where(*key).values(**values)).rowcount == 0:
                conn.execute(insert(_AN).values(run_id=run_id, dataset=dataset, qid=qid, **values))

    def eval_answers(self, run_id: int, dataset: str | None = None) -> list[dict[str, Any]]:
        q = select(_AN.c.result).where(_AN.c.run_id == run_id)
        if dataset is not None:
            q = q.where(_AN.c.dataset == dataset)
        with self._tx("eval_answers", write=False) as conn:
            return [dict(r[0]) for r in conn.execute(q.order_by(_AN.c.id))]

    def eval_run_id(self, name: str) -> int | None:
        with self._tx("eval_run_id", write=False) as conn:
            found = conn.execute(select(_R.c.id).where(_R.c.name == name)).scalar()
        return None if found is None else int(found)

    def eval_run_names(self) -> list[str]:
        with self._tx("eval_run_names", write=False) as conn:
            return [r[0] for r in conn.execute(select(_R.c.name).order_by(_R.c.id))]

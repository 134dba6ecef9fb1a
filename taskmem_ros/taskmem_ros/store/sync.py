"""Copy one store into another (a robot's offline SQLite file into the fleet's PostgreSQL).

Idempotent: entries are matched by their stable ``uid`` (migration 0004), clips by (stream,
memorizer run, index within the run), tasks by (stream, question, asked-at, created-at) and adapters by ``adapter_id``,
so re-running a sync adds nothing. Tombstones of forgotten entries travel too (first), so a
memory forgotten on either side never comes back through a sync. Vectors are copied, not
recomputed, so both stores must use the same embedder (checked). Entry ids differ between stores;
task evidence ids are rewritten to the destination's ids of the same entries. Each batch is one
destination transaction, so an interrupted sync resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy import select

from taskmem_ros.store.episodic_store import EpisodicStore
from taskmem_ros.store.errors import StoreError
from taskmem_ros.store.models import Clip, MemoryEntry, StoreMeta, Stream

log = logging.getLogger(__name__)

_E = cast(sa.Table, MemoryEntry.__table__)
_S = cast(sa.Table, Stream.__table__)
_C = cast(sa.Table, Clip.__table__)
_M = cast(sa.Table, StoreMeta.__table__)

_ENTRY_COLS = (
    "uid",
    "kind",
    "text",
    "start_ns",
    "end_ns",
    "source",
    "model_id",
    "adapter_id",
    "confidence",
    "created_ns",
)
_IN_CHUNK = 500

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class SyncReport:
    """What one sync run copied (``*_added``) and found already present (``*_present``)."""

    entries_added: int = 0
    entries_present: int = 0
    clips: int = 0
    tasks_added: int = 0
    tasks_present: int = 0
    adapters_added: int = 0
    adapters_present: int = 0
    tombstones_added: int = 0  # entries forgotten in the source, forgotten in the destination too


def _meta(store: EpisodicStore) -> dict[str, str]:
    with store._tx("sync: metadata", write=False) as conn:
        return {k: v for k, v in conn.execute(select(_M.c.key, _M.c.value)) if k in ("embedder", "embedding_dim")}


def _uid_map(store: EpisodicStore, uids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    with store._tx("sync: uid lookup", write=False) as conn:
        for k in range(0, len(uids), _IN_CHUNK):
            rows = conn.execute(select(_E.c.uid, _E.c.id).where(_E.c.uid.in_(uids[k : k + _IN_CHUNK])))
            out.update({str(u): int(i) for u, i in rows})
    return out


def sync_stores(
    src: EpisodicStore, dst: EpisodicStore, *, batch: int = 2000, progress: Progress | None = None
) -> SyncReport:
    """Copy every stream's entries (with clips and vectors), tasks and adapters of ``src``
    into ``dst``; both must be open. Returns what was added."""
    if batch < 1:
        raise ValueError(f"batch={batch!r} is invalid; expected >= 1")
    if _meta(src) != _meta(dst):
        raise StoreError(
            f"cannot sync: source embedder {_meta(src)} differs from destination {_meta(dst)} "
            "(vectors are copied, not recomputed)"
        )
    report = SyncReport()
    _sync_tombstones(src, dst, report, batch)
    _sync_adapters(src, dst, report)
    total = src.count_entries()
    done = 0
    last = 0
    clip_ids: dict[int, int] = {}
    while True:
        with src._tx("sync: read entries", write=False) as conn:
            q = (
                select(_E.c.id, _S.c.name, _E.c.clip_id, *(_E.c[c] for c in _ENTRY_COLS))
                .join(_S, _S.c.id == _E.c.stream_id)
                .where(_E.c.id > last)
                .order_by(_E.c.id)
                .limit(batch)
            )
            rows = conn.execute(q).all()
            clips = _clips(conn, {int(r[2]) for r in rows if r[2] is not None} - set(clip_ids))
        if not rows:
            break
        last = int(rows[-1][0])
        for src_cid, (stream, run, index, start, end, keyframes, transcript) in clips.items():
            clip_ids[src_cid] = dst.add_clip(stream, index, start, end, keyframes, transcript, run=run)
            report.clips += 1
        vecs = src.vectors([int(r[0]) for r in rows])
        by_stream: dict[str, list[int]] = {}
        for k, r in enumerate(rows):
            by_stream.setdefault(r[1], []).append(k)
        for stream, ks in by_stream.items():
            entries: list[dict[str, Any]] = []
            for k in ks:
                r = rows[k]
                entry = dict(zip(_ENTRY_COLS, r[3:], strict=True))
                entry["clip_id"] = None if r[2] is None else clip_ids.get(int(r[2]))
                entries.append(entry)
            added = dst.import_entries(stream, entries, vecs[np.asarray(ks)])
            report.entries_added += added
            report.entries_present += len(ks) - added
        done += len(rows)
        if progress is not None:
            progress("entries", done, total)
    _sync_tasks(src, dst, report, progress)
    log.info("sync done: %s", report)
    return report


def _clips(conn: sa.Connection, ids: set[int]) -> dict[int, tuple[str, str, int, int, int, int, str]]:
    """Source clips by id: (stream, run, index in run, start, end, keyframes, transcript)."""
    out: dict[int, tuple[str, str, int, int, int, int, str]] = {}
    wanted = sorted(ids)
    for k in range(0, len(wanted), _IN_CHUNK):
        q = (
            select(
                _C.c.id,
                _S.c.name,
                _C.c.run_id,
                sa.func.coalesce(_C.c.run_clip_index, _C.c.clip_index),
                _C.c.start_ns,
                _C.c.end_ns,
                _C.c.keyframes,
                _C.c.transcript,
            )
            .join(_S, _S.c.id == _C.c.stream_id)
            .where(_C.c.id.in_(wanted[k : k + _IN_CHUNK]))
        )
        for r in conn.execute(q):
            out[int(r[0])] = (r[1], str(r[2] or ""), int(r[3]), int(r[4]), int(r[5]), int(r[6]), r[7])
    return out


def _sync_tombstones(src: EpisodicStore, dst: EpisodicStore, report: SyncReport, batch: int) -> None:
    """Forgetting travels first: what the source forgot is forgotten in the destination (and
    its tombstone kept there, so no later sync from anywhere brings it back); entries the
    destination forgot are skipped by ``import_entries``."""
    after = 0
    while True:
        rows = src.forgotten_uids(after, limit=batch)
        if not rows:
            return
        after = rows[-1][0]
        report.tombstones_added += dst.add_tombstones([u for _, u in rows], requested_by="sync")


def _sync_adapters(src: EpisodicStore, dst: EpisodicStore, report: SyncReport) -> None:
    """Adapters by id; a copied adapter becomes active only where its kind has none active
    (the fleet's choice of adapter is not overridden by one robot's)."""
    have = {a.adapter_id for a in dst.adapters()}
    for a in src.adapters():
        if a.adapter_id in have:
            report.adapters_present += 1
            continue
        dst.register_adapter(
            a.adapter_id,
            kind=a.kind,
            base_model=a.base_model,
            path=a.path,
            sha256=a.sha256,
            metrics=a.metrics,
            active=a.active and dst.active_adapter(a.kind) is None,
            created_ns=a.created_ns,
        )
        report.adapters_added += 1


def _sync_tasks(src: EpisodicStore, dst: EpisodicStore, report: SyncReport, progress: Progress | None) -> None:
    tasks = src.tasks()
    have = {(t.stream, t.question, t.asked_at_ns, t.created_ns) for t in dst.tasks()}
    src_ids = sorted({i for t in tasks for i in t.evidence_ids})
    uid_of = _uids(src, src_ids)
    dst_id = _uid_map(dst, sorted(set(uid_of.values())))
    for n, t in enumerate(tasks, 1):
        if (t.stream, t.question, t.asked_at_ns, t.created_ns) in have:
            report.tasks_present += 1
            continue
        evidence = [dst_id[uid_of[i]] for i in t.evidence_ids if i in uid_of and uid_of[i] in dst_id]
        dst.log_task(
            t.question,
            asked_at_ns=t.asked_at_ns,
            answer=t.answer,
            abstained=t.abstained,
            evidence_ids=evidence,
            choices=t.choices,
            choice_index=t.choice_index,
            confidence=t.confidence,
            latency_s=t.latency_s,
            stream=t.stream,
            is_eval=t.is_eval,
            outcome=t.outcome,
            created_ns=t.created_ns,
        )
        report.tasks_added += 1
        if progress is not None and (n % 500 == 0 or n == len(tasks)):
            progress("tasks", n, len(tasks))


def _uids(store: EpisodicStore, ids: list[int]) -> dict[int, str]:
    """Entry id -> uid for the ``ids`` that exist."""
    found: dict[int, str] = {}
    with store._tx("sync: uids", write=False) as conn:
        for k in range(0, len(ids), _IN_CHUNK):
            for i, u in conn.execute(select(_E.c.id, _E.c.uid).where(_E.c.id.in_(ids[k : k + _IN_CHUNK]))):
                found[int(i)] = str(u)
    return found

"""Forgetting on purpose: a person asks to be forgotten, a memory is wrong, a retention rule.

``EpisodicStore.forget(selector, dry_run=...)`` removes, in ONE transaction, the entries the
selector matches with their float vectors (cascade), FTS5 rows (trigger), sqlite-vec codes and
clip rows, and writes a tombstone per entry plus one ``forget_log`` row (who, why, when, the
selector - a text match only as its sha256). The derived indexes (RAM LSH, HNSW, tantivy) of
every process apply the tombstones on their next refresh, so a kill -9 at any point leaves
either nothing forgotten or everything (the indexes catch up on open). Archived clip files
(``ingest.keep_clips_dir``) are deleted after the commit; names still to delete stay in the
log row and the next forget with the archive finishes them.

Selectors are deliberately strict: criteria combine with AND, a selector without any
criterion or a text match without a content word is refused unless ``everything=True`` - an
empty text box must never mean "forget everything".
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import Connection, delete, insert, select, update

from taskmem_ros.store import lexical
from taskmem_ros.store.models import Clip, ForgetLog, Forgotten, MemoryEntry, Stream
from taskmem_ros.types import MEMORY_KINDS, MemoryRecord

log = logging.getLogger(__name__)

_E = cast(sa.Table, MemoryEntry.__table__)
_S = cast(sa.Table, Stream.__table__)
_C = cast(sa.Table, Clip.__table__)
_F = cast(sa.Table, ForgetLog.__table__)
_TB = cast(sa.Table, Forgotten.__table__)
_IN_CHUNK = 500
PREVIEW = 20


@dataclass(frozen=True)
class ForgetSelector:
    """Which entries to forget; every given criterion must hold (AND).

    ``start_ns``/``end_ns``: entries whose observation window overlaps [start, end];
    ``created_before_ns``: written before this wall-clock time (retention); ``text``: entries
    containing every content word of it (what "forget everything about the blue cabinet"
    selects)."""

    ids: tuple[int, ...] = ()
    uids: tuple[str, ...] = ()
    stream: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    created_before_ns: int | None = None
    kind: str | None = None
    text: str | None = None
    everything: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(_int("ids", i) for i in self.ids))
        object.__setattr__(self, "uids", tuple(str(u) for u in self.uids))
        for name in ("start_ns", "end_ns", "created_before_ns"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, _int(name, v))
        if self.kind is not None and self.kind not in MEMORY_KINDS:
            raise ValueError(f"kind={self.kind!r} is invalid; expected one of {MEMORY_KINDS}")
        if self.stream is not None and (not isinstance(self.stream, str) or not self.stream.strip()):
            raise ValueError(f"stream={self.stream!r} is invalid; expected a non-empty name")
        if self.text is not None:
            if not isinstance(self.text, str):
                raise TypeError(f"text must be str, got {type(self.text).__name__}")
            if not self.terms():
                raise ValueError(
                    f"text={self.text[:80]!r} has no content word to match; an empty text match never means "
                    "'everything' (pass everything=True to forget all entries the other criteria select)"
                )
        if not self.everything and not self._has_criterion():
            raise ValueError(
                "a forget selector needs ids, uids, stream, a time range, kind or text (or everything=True)"
            )

    def _has_criterion(self) -> bool:
        return bool(
            self.ids
            or self.uids
            or self.stream is not None
            or self.start_ns is not None
            or self.end_ns is not None
            or self.created_before_ns is not None
            or self.kind is not None
            or self.text is not None
        )

    def terms(self, *, fold_accents: bool = True) -> list[str]:
        """Content words of ``text`` (stop-words never select on their own)."""
        if self.text is None:
            return []
        return [t for t in lexical.query_terms(self.text, fold_accents=fold_accents) if t not in lexical.STOPWORDS]

    def logged(self) -> dict[str, Any]:
        """The selector as the forget log keeps it: the text only as a hash."""
        out: dict[str, Any] = {
            k: v
            for k, v in (
                ("ids", list(self.ids)),
                ("uids", list(self.uids)),
                ("stream", self.stream),
                ("start_ns", self.start_ns),
                ("end_ns", self.end_ns),
                ("created_before_ns", self.created_before_ns),
                ("kind", self.kind),
                ("everything", self.everything),
            )
            if v not in (None, [], False)
        }
        if self.text is not None:
            out["text_sha256"] = hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()
        return out


def _int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            import numpy as np

            if isinstance(v, np.integer):
                return int(v)
        except ImportError:  # pragma: no cover
            pass
        raise TypeError(f"{name} must be int, got {v!r}")
    return int(v)


@dataclass
class ForgetResult:
    """What a forget selected (dry run) or removed."""

    dry_run: bool
    entries: int
    clips: int
    ids: list[int] = field(default_factory=list)
    preview: list[MemoryRecord] = field(default_factory=list)  # first few selected (dry run only)
    forget_id: int | None = None  # the forget_log row (applied only)
    files_deleted: int = 0
    files_pending: int = 0


@dataclass(frozen=True)
class ForgetLogRecord:
    id: int
    requested_by: str
    reason: str
    selector: dict[str, Any]
    entries: int
    clips: int
    pending_files: list[str]
    created_ns: int


class ForgetMixin:
    """``forget``, ``forget_log``, ``apply_retention`` and tombstone lookups for EpisodicStore."""

    cfg: Any
    _vec_table: bool

    def _tx(self, what: str, *, write: bool) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _stream_id(self, conn: Connection, name: str, *, create: bool) -> int | None:
        raise NotImplementedError

    def _fetch_records(self, conn: Connection, ids: Sequence[int]) -> dict[int, MemoryRecord]:
        raise NotImplementedError

    # -- selecting -----------------------------------------------------------------------------
    def _select_ids(self, conn: Connection, sel: ForgetSelector) -> list[tuple[int, str, int | None]]:
        """(id, uid, clip_id) of the selected entries, oldest first."""
        q = select(_E.c.id, _E.c.uid, _E.c.clip_id)
        if sel.stream is not None:
            sid = self._stream_id(conn, sel.stream, create=False)
            if sid is None:
                return []
            q = q.where(_E.c.stream_id == sid)
        if sel.start_ns is not None:
            q = q.where(_E.c.end_ns >= sel.start_ns)
        if sel.end_ns is not None:
            q = q.where(_E.c.start_ns <= sel.end_ns)
        if sel.created_before_ns is not None:
            q = q.where(_E.c.created_ns < sel.created_before_ns)
        if sel.kind is not None:
            q = q.where(_E.c.kind == sel.kind)
        if sel.text is not None:
            if conn.dialect.name == "sqlite":
                match = sa.text("SELECT rowid FROM memory_fts WHERE memory_fts MATCH :m").bindparams(
                    m=lexical.all_of(sel.terms())
                )
                q = q.where(_E.c.id.in_(match.columns(sa.column("rowid", sa.Integer))))
            else:
                words = " ".join(sel.terms(fold_accents=False))
                q = q.where(sa.text("memory_entries.tsv @@ plainto_tsquery('simple', :w)").bindparams(w=words))
        rows: list[tuple[int, str, int | None]] = []
        if sel.ids or sel.uids:
            keys: list[Any] = list(sel.ids) or list(sel.uids)
            col = _E.c.id if sel.ids else _E.c.uid
            for k in range(0, len(keys), _IN_CHUNK):
                part = q.where(col.in_(keys[k : k + _IN_CHUNK]))
                if sel.ids and sel.uids:
                    part = part.where(_E.c.uid.in_(list(sel.uids)))
                rows.extend((int(r[0]), str(r[1]), r[2]) for r in conn.execute(part))
            rows = sorted(set(rows), key=lambda r: r[0])
        else:
            rows = [(int(r[0]), str(r[1]), r[2]) for r in conn.execute(q.order_by(_E.c.id))]
        return rows

    # -- forgetting ----------------------------------------------------------------------------
    def forget(
        self,
        selector: ForgetSelector,
        *,
        dry_run: bool = True,
        requested_by: str = "",
        reason: str = "",
        clips_dir: str | Path | None = None,
        log_empty: bool = True,
    ) -> ForgetResult:
        """Preview (``dry_run=True``, the default) or apply a forget; see the module doc.

        ``clips_dir``: the clip archive (``ingest.keep_clips_dir``) whose files of the forgotten
        clips are deleted too."""
        if not isinstance(selector, ForgetSelector):
            raise TypeError(f"selector must be a ForgetSelector, got {type(selector).__name__}")
        if dry_run:
            with self._tx("forget preview", write=False) as conn:
                rows = self._select_ids(conn, selector)
                n_clips = len({int(r[2]) for r in rows if r[2] is not None})
                found = self._fetch_records(conn, [r[0] for r in rows[:PREVIEW]])
            return ForgetResult(
                True,
                len(rows),
                n_clips,
                [r[0] for r in rows],
                [found[r[0]] for r in rows[:PREVIEW] if r[0] in found],
            )
        now = time.time_ns()
        with self._tx("forget", write=True) as conn:
            rows = self._select_ids(conn, selector)
            clip_ids = sorted({int(r[2]) for r in rows if r[2] is not None})
            if not rows and not log_empty:
                return ForgetResult(False, 0, 0)
            files = self._clip_files(conn, clip_ids)
            fid = _log_forget(conn, requested_by, reason, selector.logged(), len(rows), clip_ids, files, now)
            self._remove_rows(conn, rows, clip_ids, fid, now)
        result = ForgetResult(False, len(rows), len(clip_ids), [r[0] for r in rows], forget_id=fid)
        if clips_dir:
            result.files_deleted, result.files_pending = self._delete_pending_files(Path(clips_dir))
        else:
            result.files_pending = len(files)
        log.info(
            "forgot %d entries and %d clips (forget %s, requested by %r)", len(rows), len(clip_ids), fid, requested_by
        )
        return result

    def _remove_rows(
        self, conn: Connection, rows: list[tuple[int, str, int | None]], clip_ids: list[int], fid: int, now: int
    ) -> None:
        ids = [r[0] for r in rows]
        for k in range(0, len(rows), _IN_CHUNK):
            chunk = rows[k : k + _IN_CHUNK]
            conn.execute(
                insert(_TB),
                [{"uid": u, "entry_id": i, "forget_id": fid, "forgotten_ns": now} for i, u, _ in chunk],
            )
            part = ids[k : k + _IN_CHUNK]
            if self._vec_table:
                marks = ",".join("?" * len(part))
                conn.exec_driver_sql(f"DELETE FROM vec_entries WHERE rowid IN ({marks})", tuple(part))
            conn.execute(delete(_E).where(_E.c.id.in_(part)))  # embeddings cascade, FTS5 by trigger
        for k in range(0, len(clip_ids), _IN_CHUNK):
            conn.execute(delete(_C).where(_C.c.id.in_(clip_ids[k : k + _IN_CHUNK])))

    @staticmethod
    def _clip_files(conn: Connection, clip_ids: list[int]) -> list[str]:
        """Archive-relative file names of clips (store.clip_archive's naming)."""
        from taskmem_ros.store.clip_archive import ClipArchive
        from taskmem_ros.types import Clip as ClipT

        out: list[str] = []
        archive = ClipArchive("")
        for k in range(0, len(clip_ids), _IN_CHUNK):
            q = (
                select(_S.c.name, _C.c.run_id, sa.func.coalesce(_C.c.run_clip_index, _C.c.clip_index), _C.c.start_ns)
                .join(_S, _S.c.id == _C.c.stream_id)
                .where(_C.c.id.in_(clip_ids[k : k + _IN_CHUNK]))
            )
            for name, run, index, start in conn.execute(q):
                clip = ClipT(stream=name, index=int(index), start_ns=int(start), end_ns=int(start), run=str(run or ""))
                out.append(str(archive.path(clip)))
        return out

    def _delete_pending_files(self, root: Path) -> tuple[int, int]:
        """Unlink the archived clip files every forget still lists; (deleted, still pending)."""
        deleted = pending = 0
        with self._tx("forget: pending files", write=False) as conn:
            rows = conn.execute(select(_F.c.id, _F.c.pending_files).where(_F.c.pending_files.is_not(None))).all()
        base = root.resolve()
        for fid, names in rows:
            left = []
            for name in names or []:
                path = (root / name).resolve()
                if base not in path.parents:  # never outside the archive
                    continue
                try:
                    path.unlink(missing_ok=True)
                    deleted += 1
                except OSError as exc:
                    log.warning("clip file %s not deleted: %s", path, exc)
                    left.append(name)
            pending += len(left)
            with self._tx("forget: pending files", write=True) as conn:
                conn.execute(update(_F).where(_F.c.id == fid).values(pending_files=left or None))
        return deleted, pending

    # -- reading -------------------------------------------------------------------------------
    def forget_log(self) -> list[ForgetLogRecord]:
        with self._tx("forget_log", write=False) as conn:
            rows = conn.execute(select(_F).order_by(_F.c.id)).all()
        return [
            ForgetLogRecord(
                int(r.id),
                r.requested_by,
                r.reason,
                dict(r.selector),
                int(r.entries),
                int(r.clips),
                list(r.pending_files or []),
                int(r.created_ns),
            )
            for r in rows
        ]

    def forgotten_uids(self, after_seq: int = 0, limit: int | None = None) -> list[tuple[int, str]]:
        """(seq, uid) tombstones after ``after_seq``, oldest first (what a sync carries)."""
        q = select(_TB.c.seq, _TB.c.uid).where(_TB.c.seq > int(after_seq)).order_by(_TB.c.seq)
        if limit is not None:
            q = q.limit(int(limit))
        with self._tx("forgotten", write=False) as conn:
            return [(int(s), str(u)) for s, u in conn.execute(q)]

    def tombstone_uids(self, conn: Connection, uids: Sequence[str]) -> set[str]:
        """Which of ``uids`` were forgotten here (inside the caller's transaction)."""
        out: set[str] = set()
        for k in range(0, len(uids), _IN_CHUNK):
            out.update(
                str(u)
                for u in conn.execute(select(_TB.c.uid).where(_TB.c.uid.in_(list(uids[k : k + _IN_CHUNK])))).scalars()
            )
        return out

    def add_tombstones(self, uids: Sequence[str], *, requested_by: str = "sync") -> int:
        """Forget the entries with these uids (if present) and keep their tombstones either way,
        so an entry forgotten elsewhere is neither kept here nor synced back. Returns how many
        new tombstones were written."""
        uids = list(dict.fromkeys(str(u) for u in uids))
        if not uids:
            return 0
        now = time.time_ns()
        with self._tx("add_tombstones", write=True) as conn:
            new = [u for u in uids if u not in self.tombstone_uids(conn, uids)]
            if not new:
                return 0
            rows: list[tuple[int, str, int | None]] = []
            for k in range(0, len(new), _IN_CHUNK):
                rows.extend(
                    (int(i), str(u), c)
                    for i, u, c in conn.execute(
                        select(_E.c.id, _E.c.uid, _E.c.clip_id).where(_E.c.uid.in_(new[k : k + _IN_CHUNK]))
                    )
                )
            clip_ids = sorted({int(r[2]) for r in rows if r[2] is not None})
            files = self._clip_files(conn, clip_ids)
            fid = _log_forget(
                conn, requested_by, "tombstones from another store", {"uids": len(new)}, len(rows), clip_ids, files, now
            )
            self._remove_rows(conn, rows, clip_ids, fid, now)
            present = {r[1] for r in rows}
            absent = [u for u in new if u not in present]
            for k in range(0, len(absent), _IN_CHUNK):
                conn.execute(
                    insert(_TB),
                    [
                        {"uid": u, "entry_id": None, "forget_id": fid, "forgotten_ns": now}
                        for u in absent[k : k + _IN_CHUNK]
                    ],
                )
        return len(new)

    # -- retention -----------------------------------------------------------------------------
    def apply_retention(self, *, now_ns: int | None = None, clips_dir: str | Path | None = None) -> int:
        """Forget what ``store.retention_days`` and the per-kind limits no longer keep;
        returns how many entries left. Cheap when nothing is due."""
        cfg = self.cfg
        now = time.time_ns() if now_ns is None else int(now_ns)
        n = 0
        if cfg.retention_days > 0:
            cutoff = now - int(cfg.retention_days * 86400 * 1e9)
            n += self.forget(
                ForgetSelector(created_before_ns=cutoff),
                dry_run=False,
                requested_by="retention",
                reason=f"store.retention_days={cfg.retention_days}",
                clips_dir=clips_dir,
                log_empty=False,
            ).entries
        for kind, limit in (("episodic", cfg.max_episodic_entries), ("semantic", cfg.max_semantic_entries)):
            if limit <= 0:
                continue
            with self._tx("retention", write=False) as conn:
                old = [
                    int(r[0])
                    for r in conn.execute(
                        select(_E.c.id)
                        .where(_E.c.kind == kind)
                        .order_by(_E.c.end_ns.desc(), _E.c.id.desc())
                        .offset(int(limit))
                    )
                ]
            if old:
                n += self.forget(
                    ForgetSelector(ids=tuple(old), kind=kind),
                    dry_run=False,
                    requested_by="retention",
                    reason=f"store.max_{kind}_entries={limit}",
                    clips_dir=clips_dir,
                ).entries
        return n


def _log_forget(
    conn: Connection,
    requested_by: str,
    reason: str,
    selector: dict[str, Any],
    entries: int,
    clip_ids: list[int],
    files: list[str],
    now: int,
) -> int:
    """One forget-log row (who, why, what kind of selector: never the forgotten text); its id."""
    fid = conn.execute(
        insert(_F)
        .values(
            requested_by=str(requested_by)[:255],
            reason=str(reason)[:255],
            selector=selector,
            entries=entries,
            clips=len(clip_ids),
            pending_files=files or None,
            created_ns=now,
        )
        .returning(_F.c.id)
    ).scalar()
    return int(fid or 0)

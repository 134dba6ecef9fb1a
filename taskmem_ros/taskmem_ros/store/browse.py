"""Read-only views for tools that browse memory (the viewer): clips, streams, adapter usage.

Portable SQLAlchemy Core over the ORM tables (SQLite and PostgreSQL alike); EpisodicStore
mixes this in, so a tool never needs SQL of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa
from sqlalchemy import Connection, func, select

from taskmem_ros.config import StoreConfig
from taskmem_ros.store.models import Clip, MemoryEntry, StoreMeta, Stream
from taskmem_ros.types import MemoryRecord

_E = cast(sa.Table, MemoryEntry.__table__)
_S = cast(sa.Table, Stream.__table__)
_C = cast(sa.Table, Clip.__table__)
_M = cast(sa.Table, StoreMeta.__table__)
_CHUNK = 500


@dataclass(frozen=True)
class ClipRow:
    """A clip as recorded in the store (what the clip archive names its file after)."""

    id: int
    stream: str
    index: int  # the store's per-stream ordinal
    start_ns: int
    end_ns: int
    keyframes: int
    transcript: str
    run: str = ""  # the memorizer run that cut it ...
    run_index: int | None = None  # ... and its segmenter's index there (None: written before runs were kept)


@dataclass(frozen=True)
class StreamSpan:
    """How much memory a stream holds and the stream-clock window it covers."""

    name: str
    entries: int
    start_ns: int | None
    end_ns: int | None


@dataclass(frozen=True)
class AdapterUsage:
    """Memories written under one adapter id ("" = the base model)."""

    adapter_id: str
    entries: int
    first_created_ns: int
    last_created_ns: int
    first_start_ns: int
    last_end_ns: int


def stored_meta(cfg: StoreConfig) -> dict[str, str]:
    """The database's own facts (embedder id, dimension) read before opening a store on it,
    so a tool can pick the embedder the database was built with.
    An unreadable or missing database gives {} (opening the store then says what is wrong);
    a missing SQLite file is not created."""
    from pathlib import Path

    from taskmem_ros.store.engine import create_store_engine, database_path

    path = database_path(cfg.url)
    if path and not path.startswith("file:") and (path == ":memory:" or not Path(path).expanduser().is_file()):
        return {}
    try:
        se = create_store_engine(cfg, read_only=True)
    except sa.exc.SQLAlchemyError:
        return {}
    try:
        with se.engine.connect() as conn:
            return {str(k): str(v) for k, v in conn.execute(select(_M.c.key, _M.c.value)).all()}
    except sa.exc.SQLAlchemyError:
        return {}
    finally:
        se.engine.dispose()


class BrowseMixin:
    """Needs the host's transaction helper and record fetcher."""

    def _tx(self, what: str, *, write: bool) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _fetch_records(self, conn: Connection, ids: Sequence[int]) -> dict[int, MemoryRecord]:
        raise NotImplementedError

    def clips_by_id(self, ids: Sequence[int]) -> dict[int, ClipRow]:
        uniq = list(dict.fromkeys(int(i) for i in ids))
        out: dict[int, ClipRow] = {}
        with self._tx("clips_by_id", write=False) as conn:
            for k in range(0, len(uniq), _CHUNK):
                cols = (_C.c.clip_index, _C.c.start_ns, _C.c.end_ns, _C.c.keyframes, _C.c.transcript)
                q = (
                    select(_C.c.id, _S.c.name, *cols, _C.c.run_id, _C.c.run_clip_index)
                    .join(_S, _S.c.id == _C.c.stream_id)
                    .where(_C.c.id.in_(uniq[k : k + _CHUNK]))
                )
                for r in conn.execute(q):
                    run_index = None if r[8] is None else int(r[8])
                    out[int(r[0])] = ClipRow(
                        int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), r[6] or "", r[7] or "", run_index
                    )
        return out

    def clip_entries(self, clip_id: int) -> list[MemoryRecord]:
        """The memories a clip produced, oldest first."""
        with self._tx("clip_entries", write=False) as conn:
            ids = [
                int(r[0]) for r in conn.execute(select(_E.c.id).where(_E.c.clip_id == int(clip_id)).order_by(_E.c.id))
            ]
            found = self._fetch_records(conn, ids)
        return [found[i] for i in ids if i in found]

    def stream_spans(self) -> list[StreamSpan]:
        q = (
            select(_S.c.name, func.count(_E.c.id), func.min(_E.c.start_ns), func.max(_E.c.end_ns))
            .outerjoin(_E, _E.c.stream_id == _S.c.id)
            .group_by(_S.c.id, _S.c.name)
            .order_by(_S.c.id)
        )
        with self._tx("stream_spans", write=False) as conn:
            return [
                StreamSpan(
                    r[0], int(r[1] or 0), None if r[2] is None else int(r[2]), None if r[3] is None else int(r[3])
                )
                for r in conn.execute(q)
            ]

    def adapter_usage(self) -> dict[str, AdapterUsage]:
        q = select(
            _E.c.adapter_id,
            func.count(_E.c.id),
            func.min(_E.c.created_ns),
            func.max(_E.c.created_ns),
            func.min(_E.c.start_ns),
            func.max(_E.c.end_ns),
        ).group_by(_E.c.adapter_id)
        with self._tx("adapter_usage", write=False) as conn:
            return {
                r[0]: AdapterUsage(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in conn.execute(q)
            }

    def entries_by_adapter(self, adapter_id: str, *, limit: int = 20) -> list[MemoryRecord]:
        """The first memories written under ``adapter_id``, in creation order."""
        q = (
            select(_E.c.id)
            .where(_E.c.adapter_id == str(adapter_id))
            .order_by(_E.c.created_ns, _E.c.id)
            .limit(max(0, int(limit)))
        )
        with self._tx("entries_by_adapter", write=False) as conn:
            ids = [int(r[0]) for r in conn.execute(q)]
            found = self._fetch_records(conn, ids)
        return [found[i] for i in ids if i in found]

    def entries_before(self, created_ns: int, *, exclude_adapter: str, limit: int = 20) -> list[MemoryRecord]:
        """The newest memories created before ``created_ns`` by any other adapter (or the base
        model): the 'before' side of a Phase Two round's before/after view."""
        q = (
            select(_E.c.id)
            .where(_E.c.created_ns < int(created_ns), _E.c.adapter_id != str(exclude_adapter))
            .order_by(_E.c.created_ns.desc(), _E.c.id.desc())
            .limit(max(0, int(limit)))
        )
        with self._tx("entries_before", write=False) as conn:
            ids = [int(r[0]) for r in conn.execute(q)]
            found = self._fetch_records(conn, ids)
        return [found[i] for i in reversed(ids) if i in found]

"""EpisodicStore: the robot's long-term memory in one SQLite file (or a PostgreSQL schema).

Writes are single ``BEGIN IMMEDIATE`` transactions (entry rows, float vectors, LSH codes,
and - by trigger - the FTS5 index), so a crash never leaves half a batch. Reads run in one
snapshot transaction, so a search sees a consistent memory even while the memorizer writes.

As-of semantics: a question asked at time t may only use memories whose observation window
had *ended* by t (``end_ns <= as_of_ns``); a time window [start, end] selects entries that
overlap it. Both are enforced on every path (full-text, vector, timeline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, func, insert, select, update

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import lexical
from taskmem_ros.store.embedding import Embedder, make_embedder, normalize_rows
from taskmem_ros.store.engine import IMMEDIATE, StoreEngine, create_store_engine, database_path
from taskmem_ros.store.errors import StoreError, StoreReadOnlyError, classify
from taskmem_ros.store.evaluations import EvalLogMixin
from taskmem_ros.store.models import Adapter, Clip, Embedding, MemoryEntry, StoreMeta, Stream, Task
from taskmem_ros.store.search import Searcher, fetch_vectors
from taskmem_ros.store.tasks import TaskLogMixin
from taskmem_ros.store.vector_index import LSH_BITS, LSH_SEED, VEC0_DDL, Filter, lsh_codes
from taskmem_ros.types import MEMORY_KINDS, MemoryDraft, MemoryRecord, ScoredMemory

log = logging.getLogger(__name__)

SEARCH_MODES = ("hybrid", "fts", "vector")
MAX_LIMIT = 1000
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_IN_CHUNK = 500

_E = cast(sa.Table, MemoryEntry.__table__)
_S = cast(sa.Table, Stream.__table__)
_V = cast(sa.Table, Embedding.__table__)
_T = cast(sa.Table, Task.__table__)
_A = cast(sa.Table, Adapter.__table__)
_C = cast(sa.Table, Clip.__table__)
_M = cast(sa.Table, StoreMeta.__table__)

_RECORD_COLS = (
    _E.c.id,
    _S.c.name,
    _E.c.kind,
    _E.c.text,
    _E.c.start_ns,
    _E.c.end_ns,
    _E.c.source,
    _E.c.model_id,
    _E.c.adapter_id,
    _E.c.created_ns,
    _E.c.clip_id,
    _E.c.confidence,
)


def _record(row: Any) -> MemoryRecord:
    return MemoryRecord(
        id=int(row[0]),
        stream=row[1],
        kind=row[2],
        text=row[3],
        start_ns=int(row[4]),
        end_ns=int(row[5]),
        source=row[6],
        model_id=row[7],
        adapter_id=row[8],
        created_ns=int(row[9]),
        clip_id=None if row[10] is None else int(row[10]),
        confidence=float(row[11]),
    )


def _opt_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int (nanoseconds) or None, got {value!r}")
    return int(value)


class EpisodicStore(TaskLogMixin, EvalLogMixin):
    """Long-term episodic memory: entries, their embeddings and indexes, tasks, adapters."""

    def __init__(self, cfg: StoreConfig | None = None, *, embedder: Embedder | None = None) -> None:
        self.cfg = cfg if cfg is not None else StoreConfig()
        self._embedder = embedder
        self._se: StoreEngine | None = None
        self._search = Searcher(self.cfg, self.cfg.embedding_dim)
        self._streams: dict[str, int] = {}
        self._vec_table = False
        self._path = database_path(self.cfg.url)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return self._path

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (pragmas and sqlite-vec applied), for tools and migrations."""
        return self._require().engine

    @property
    def is_open(self) -> bool:
        return self._se is not None

    @property
    def embedder(self) -> Embedder:
        """The embedder named by ``store.embedder`` (created on first use)."""
        if self._embedder is None:
            self._embedder = make_embedder(self.cfg.embedder, self.cfg.embedding_dim)
        return self._embedder

    def open(self) -> EpisodicStore:
        """Create/upgrade the schema and check the embedder matches the database. Idempotent."""
        if self._se is not None:
            return self
        if self._path and self._path != ":memory:" and not self._path.startswith("file:"):
            parent = Path(self._path).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreReadOnlyError("cannot create the database directory", path=self._path, cause=exc) from exc
            if Path(self._path).expanduser().is_dir():
                raise StoreError("the database path is a directory", path=self._path)
        try:
            se = create_store_engine(self.cfg)
        except sa.exc.DBAPIError as exc:
            raise classify("cannot open the database", path=self._path, cause=exc.orig or exc) from exc
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"invalid store.url {self.cfg.url!r}", path=self._path, cause=exc) from exc
        self._se = se
        self._search = Searcher(self.cfg, self.embedder.dim)
        try:
            self._migrate()
            self._check_meta()
            if se.is_sqlite:
                self._ensure_vec_table()
        except BaseException:
            self.close()
            raise
        log.info("episodic store open: %s (sqlite-vec=%s, fts5=%s)", self._path or self.cfg.url, se.has_vec, se.has_fts)
        return self

    def close(self) -> None:
        se, self._se = self._se, None
        if se is not None:
            se.engine.dispose()
        self._search.reset()
        self._streams.clear()

    def __enter__(self) -> EpisodicStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require(self) -> StoreEngine:
        if self._se is None:
            raise StoreError("the store is not open (call open() or use it as a context manager)", path=self._path)
        return self._se

    @contextmanager
    def _tx(self, what: str, *, write: bool) -> Iterator[Connection]:
        """One transaction; DB-API failures become StoreError (the transaction rolls back)."""
        se = self._require()
        try:
            with se.engine.connect() as conn:
                if write and se.is_sqlite:
                    conn.execution_options(**{IMMEDIATE: True})
                with conn.begin():
                    yield conn
        except sa.exc.DBAPIError as exc:
            raise classify(f"{what} failed", path=self._path or self.cfg.url, cause=exc.orig or exc) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{what} failed", path=self._path or self.cfg.url, cause=exc) from exc

    def _migrate(self) -> None:
        se = self._require()
        acfg = AlembicConfig()
        acfg.set_main_option("script_location", str(_MIGRATIONS))
        acfg.attributes["has_vec"] = se.has_vec
        with self._tx("schema migration", write=True) as conn:
            acfg.attributes["connection"] = conn
            command.upgrade(acfg, "head")

    def _check_meta(self) -> None:
        """Refuse to search a database with vectors from another embedder."""
        emb = self.embedder
        want = {"embedder": emb.model_id, "embedding_dim": str(emb.dim)}
        with self._tx("store metadata", write=True) as conn:
            have = dict(conn.execute(select(_M.c.key, _M.c.value)).all())
            for key, value in want.items():
                if key not in have:
                    conn.execute(insert(_M).values(key=key, value=value))
                elif have[key] != value:
                    raise StoreError(
                        f"database was built with {key}={have[key]!r} but this store uses {value!r}; "
                        "use the same store.embedder, or a new database",
                        path=self._path,
                    )

    def _ensure_vec_table(self) -> None:
        """Make vec_entries match the current LSH scheme and hold a code for every vector.

        Codes are derived data (the float vectors are authoritative), so a table written
        while sqlite-vec was unavailable is back-filled, and one written with other
        hyperplanes/bit count is rebuilt, instead of failing.
        """
        se = self._require()
        if not se.has_vec:
            self._vec_table = False
            return
        scheme = f"hyperplane-{LSH_BITS}-{LSH_SEED:x}"
        with self._tx("vector table check", write=True) as conn:
            ddl = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type='table' AND name='vec_entries'"
            ).scalar()
            stored = conn.execute(select(_M.c.value).where(_M.c.key == "lsh")).scalar()
            if ddl is not None and (f"bit[{LSH_BITS}]" not in ddl or (stored is not None and stored != scheme)):
                log.warning("rebuilding vec_entries for LSH scheme %s (was %s)", scheme, stored)
                conn.exec_driver_sql("DROP TABLE vec_entries")
                ddl = None
            if ddl is None:
                conn.exec_driver_sql(VEC0_DDL)
            if stored is None:
                conn.execute(insert(_M).values(key="lsh", value=scheme))
            elif stored != scheme:
                conn.execute(update(_M).where(_M.c.key == "lsh").values(value=scheme))
            n_vec = conn.exec_driver_sql("SELECT count(*) FROM vec_entries_rowids").scalar() or 0
            n_emb = conn.execute(select(func.count()).select_from(_V)).scalar() or 0
            if n_vec != n_emb:
                missing = conn.exec_driver_sql(
                    "SELECT e.id, e.stream_id, e.start_ns, e.end_ns, v.vector FROM memory_entries e "
                    "JOIN embeddings v ON v.entry_id = e.id "
                    "WHERE e.id NOT IN (SELECT rowid FROM vec_entries_rowids) ORDER BY e.id"
                ).all()
                if missing:
                    log.info("back-filling %d LSH codes into vec_entries", len(missing))
                    vecs = np.stack([np.frombuffer(r[4], dtype="<f4") for r in missing])
                    self._insert_codes(conn, missing, lsh_codes(vecs))
            self._vec_table = True

    @staticmethod
    def _insert_codes(conn: Connection, rows: Sequence[Any], codes: np.ndarray) -> None:
        conn.exec_driver_sql(
            "INSERT INTO vec_entries(rowid, stream_id, start_ns, end_ns, code) VALUES (?, ?, ?, ?, vec_bit(?))",
            [(int(r[0]), int(r[1]), int(r[2]), int(r[3]), codes[i].tobytes()) for i, r in enumerate(rows)],
        )

    # -- streams and clips -------------------------------------------------------------------
    def _stream_id(self, conn: Connection, name: str, *, create: bool) -> int | None:
        sid = self._streams.get(name)
        if sid is not None:
            return sid
        sid = conn.execute(select(_S.c.id).where(_S.c.name == name)).scalar()
        if sid is None and create:
            sid = conn.execute(insert(_S).values(name=name, created_ns=time.time_ns()).returning(_S.c.id)).scalar()
        return None if sid is None else int(sid)

    def ensure_stream(self, name: str) -> int:
        """Id of stream ``name``, creating it if needed."""
        name = self._check_stream(name)
        with self._tx("ensure_stream", write=True) as conn:
            sid = self._stream_id(conn, name, create=True)
        assert sid is not None
        self._streams[name] = sid
        return sid

    def streams(self) -> list[str]:
        with self._tx("streams", write=False) as conn:
            return [r[0] for r in conn.execute(select(_S.c.name).order_by(_S.c.id))]

    def add_clip(
        self, stream: str, index: int, start_ns: int, end_ns: int, keyframes: int = 0, transcript: str = ""
    ) -> int:
        """Record (or, on replay, update) clip ``index`` of ``stream``; returns its id."""
        stream = self._check_stream(stream)
        if int(end_ns) < int(start_ns):
            raise ValueError(f"clip end_ns={end_ns} is before start_ns={start_ns}")
        values = {
            "start_ns": int(start_ns),
            "end_ns": int(end_ns),
            "keyframes": int(keyframes),
            "transcript": str(transcript or ""),
        }
        with self._tx("add_clip", write=True) as conn:
            sid = self._stream_id(conn, stream, create=True)
            cid = conn.execute(select(_C.c.id).where(_C.c.stream_id == sid, _C.c.clip_index == int(index))).scalar()
            if cid is None:
                cid = conn.execute(
                    insert(_C).values(stream_id=sid, clip_index=int(index), **values).returning(_C.c.id)
                ).scalar()
            else:
                conn.execute(update(_C).where(_C.c.id == cid).values(**values))
        assert sid is not None and cid is not None
        self._streams[stream] = sid
        return int(cid)

    # -- writing memory ----------------------------------------------------------------------
    def add_entries(
        self,
        stream: str,
        drafts: Sequence[MemoryDraft],
        *,
        clip_id: int | None = None,
        model_id: str = "",
        adapter_id: str = "",
        embeddings: np.ndarray | None = None,
    ) -> list[MemoryRecord]:
        """Commit ``drafts`` in ONE transaction and return them as records (after commit).

        Empty/whitespace drafts are dropped. Embeddings are computed in one batch *before*
        the write lock is taken; ``embeddings`` (one row per draft) skips that, e.g. for
        bulk imports that already have vectors.
        """
        stream = self._check_stream(stream)
        keep: list[int] = []
        for i, d in enumerate(drafts):
            if not isinstance(d, MemoryDraft):
                raise TypeError(f"drafts[{i}] is {type(d).__name__}, expected MemoryDraft")
            if not isinstance(d.text, str) or not d.text.strip():
                continue
            if d.kind not in MEMORY_KINDS:
                raise ValueError(f"drafts[{i}].kind={d.kind!r} is invalid; expected one of {MEMORY_KINDS}")
            if int(d.end_ns) < int(d.start_ns):
                raise ValueError(f"drafts[{i}] end_ns={d.end_ns} is before start_ns={d.start_ns}")
            keep.append(i)
        if not keep:
            return []
        texts = [drafts[i].text.strip() for i in keep]
        if embeddings is not None:
            emb = np.asarray(embeddings, dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != len(drafts):
                raise ValueError(f"embeddings shape {emb.shape} does not match {len(drafts)} drafts")
            vecs = normalize_rows(emb[keep])
        else:
            vecs = self.embedder.embed(texts)
        codes = lsh_codes(vecs)
        now = time.time_ns()
        rows: list[dict[str, Any]] = [
            {
                "clip_id": clip_id,
                "kind": drafts[i].kind,
                "text": text,
                "start_ns": int(drafts[i].start_ns),
                "end_ns": int(drafts[i].end_ns),
                "source": drafts[i].source or "",
                "model_id": model_id or "",
                "adapter_id": adapter_id or "",
                "confidence": float(drafts[i].confidence),
                "created_ns": now,
            }
            for i, text in zip(keep, texts, strict=True)
        ]
        with self._tx("add_entries", write=True) as conn:
            sid = self._stream_id(conn, stream, create=True)
            for r in rows:
                r["stream_id"] = sid
            dim = int(vecs.shape[1])
            blobs = [v.astype("<f4", copy=False).tobytes() for v in vecs]
            if self._require().is_sqlite:
                ids = self._insert_sqlite(conn, rows, blobs, dim)
            else:
                result = conn.execute(insert(_E).returning(_E.c.id, sort_by_parameter_order=True), rows)
                ids = [int(r[0]) for r in result]
                conn.execute(
                    insert(_V), [{"entry_id": i, "dim": dim, "vector": b} for i, b in zip(ids, blobs, strict=True)]
                )
            if self._vec_table:
                meta = [(i, sid, r["start_ns"], r["end_ns"]) for i, r in zip(ids, rows, strict=True)]
                self._insert_codes(conn, meta, codes)
        assert sid is not None
        self._streams[stream] = sid
        return [
            MemoryRecord(
                id=i,
                stream=stream,
                kind=r["kind"],
                text=r["text"],
                start_ns=r["start_ns"],
                end_ns=r["end_ns"],
                source=r["source"],
                model_id=r["model_id"],
                adapter_id=r["adapter_id"],
                created_ns=now,
                clip_id=clip_id,
                confidence=r["confidence"],
            )
            for i, r in zip(ids, rows, strict=True)
        ]

    @staticmethod
    def _insert_sqlite(conn: Connection, rows: list[dict[str, Any]], blobs: list[bytes], dim: int) -> list[int]:
        """Driver-level executemany with explicit ids: SQLAlchemy's ordered RETURNING falls
        back to one statement per row on SQLite (3x slower). Safe because the caller holds
        the write lock (BEGIN IMMEDIATE), and AUTOINCREMENT never hands out these ids again."""
        base = conn.exec_driver_sql(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'memory_entries'), 0), "
            "coalesce((SELECT max(id) FROM memory_entries), 0))"
        ).scalar()
        ids = list(range(int(base or 0) + 1, int(base or 0) + 1 + len(rows)))
        conn.exec_driver_sql(
            "INSERT INTO memory_entries (id, stream_id, clip_id, kind, text, start_ns, end_ns, source, model_id, "
            "adapter_id, confidence, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    r["stream_id"],
                    r["clip_id"],
                    r["kind"],
                    r["text"],
                    r["start_ns"],
                    r["end_ns"],
                    r["source"],
                    r["model_id"],
                    r["adapter_id"],
                    r["confidence"],
                    r["created_ns"],
                )
                for i, r in zip(ids, rows, strict=True)
            ],
        )
        conn.exec_driver_sql(
            "INSERT INTO embeddings (entry_id, dim, vector) VALUES (?, ?, ?)",
            [(i, dim, b) for i, b in zip(ids, blobs, strict=True)],
        )
        return ids

    # -- reading memory ----------------------------------------------------------------------
    def _fetch_records(self, conn: Connection, ids: Sequence[int]) -> dict[int, MemoryRecord]:
        out: dict[int, MemoryRecord] = {}
        uniq = list(dict.fromkeys(int(i) for i in ids))
        for k in range(0, len(uniq), _IN_CHUNK):
            chunk = uniq[k : k + _IN_CHUNK]
            q = select(*_RECORD_COLS).join(_S, _S.c.id == _E.c.stream_id).where(_E.c.id.in_(chunk))
            for row in conn.execute(q).all():
                out[int(row[0])] = _record(row)
        return out

    def get_entries(self, ids: Sequence[int]) -> list[MemoryRecord]:
        """Records for ``ids`` in the order given; unknown ids are skipped."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        with self._tx("get_entries", write=False) as conn:
            found = self._fetch_records(conn, ids)
        return [found[i] for i in ids if i in found]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Stored float32 vectors for ``ids`` (rows of zeros for ids without one)."""
        ids = [int(i) for i in ids]
        out = np.zeros((len(ids), self.embedder.dim), dtype=np.float32)
        if not ids:
            return out
        with self._tx("vectors", write=False) as conn:
            found = fetch_vectors(conn, ids)
        for row, i in enumerate(ids):
            v = found.get(i)
            if v is not None and len(v) == out.shape[1]:
                out[row] = v
        return out

    def _filtered(
        self,
        conn: Connection,
        stream: str | None,
        as_of_ns: int | None,
        start_ns: int | None,
        end_ns: int | None,
    ) -> sa.Select[Any] | None:
        q = select(*_RECORD_COLS).join(_S, _S.c.id == _E.c.stream_id)
        if stream is not None:
            sid = self._stream_id(conn, stream, create=False)
            if sid is None:
                return None
            q = q.where(_E.c.stream_id == sid)
        if as_of_ns is not None:
            q = q.where(_E.c.end_ns <= as_of_ns)
        if start_ns is not None:
            q = q.where(_E.c.end_ns >= start_ns)
        if end_ns is not None:
            q = q.where(_E.c.start_ns <= end_ns)
        return q

    def timeline(
        self,
        stream: str | None = None,
        as_of_ns: int | None = None,
        limit: int | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        newest_first: bool = False,
    ) -> list[MemoryRecord]:
        """Entries ordered by start time (oldest first unless ``newest_first``)."""
        as_of_ns, start_ns, end_ns = (
            _opt_int(n, v) for n, v in (("as_of_ns", as_of_ns), ("start_ns", start_ns), ("end_ns", end_ns))
        )
        if limit is not None and int(limit) <= 0:
            return []
        with self._tx("timeline", write=False) as conn:
            q = self._filtered(conn, stream, as_of_ns, start_ns, end_ns)
            if q is None:
                return []
            order = (_E.c.start_ns.desc(), _E.c.id.desc()) if newest_first else (_E.c.start_ns, _E.c.id)
            q = q.order_by(*order)
            if limit is not None:
                q = q.limit(int(limit))
            return [_record(r) for r in conn.execute(q)]

    def recent(self, stream: str, limit: int, as_of_ns: int | None = None) -> list[MemoryRecord]:
        """The ``limit`` most recently ended entries of ``stream`` (as of ``as_of_ns``),
        returned oldest first - the order a policy reads its context in."""
        as_of_ns = _opt_int("as_of_ns", as_of_ns)
        if int(limit) <= 0:
            return []
        with self._tx("recent", write=False) as conn:
            q = self._filtered(conn, stream, as_of_ns, None, None)
            if q is None:
                return []
            rows = conn.execute(q.order_by(_E.c.end_ns.desc(), _E.c.id.desc()).limit(int(limit))).all()
        return sorted((_record(r) for r in rows), key=lambda r: (r.start_ns, r.id))

    def count_entries(self, stream: str | None = None) -> int:
        with self._tx("count_entries", write=False) as conn:
            q = select(func.count()).select_from(_E)
            if stream is not None:
                sid = self._stream_id(conn, stream, create=False)
                if sid is None:
                    return 0
                q = q.where(_E.c.stream_id == sid)
            return int(conn.execute(q).scalar() or 0)

    # -- search ------------------------------------------------------------------------------
    def warm(self) -> int:
        """Load the RAM vector index now (a cold 1M-entry store takes a few seconds) rather
        than on the first question; returns the number of entries indexed."""
        with self._tx("warm", write=False) as conn:
            self._search.refresh(conn, vec_table=self._vec_table)
        return len(self._search.index)

    def search(
        self,
        query: str,
        *,
        as_of_ns: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        stream: str | None = None,
        limit: int = 10,
        mode: str = "hybrid",
    ) -> list[ScoredMemory]:
        """Best entries for ``query`` among those visible as of ``as_of_ns`` / in the window.

        Scores: "fts" -> bm25 (higher is better), "vector" -> cosine similarity,
        "hybrid" -> weighted reciprocal-rank fusion normalised to (0, 1].
        """
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode={mode!r} is invalid; expected one of {SEARCH_MODES}")
        if not isinstance(query, str):
            raise TypeError(f"query must be str, got {type(query).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
            raise ValueError(f"limit={limit!r} is invalid; expected an int >= 0")
        flt_args = (_opt_int("as_of_ns", as_of_ns), _opt_int("start_ns", start_ns), _opt_int("end_ns", end_ns))
        limit = min(int(limit), MAX_LIMIT)
        if limit == 0:
            return []
        se = self._require()
        pool = max(self.cfg.candidate_pool, limit)
        terms = lexical.query_terms(query)
        use_fts = mode in ("hybrid", "fts") and se.has_fts
        if mode == "fts" and not se.has_fts:
            raise StoreError("full-text search needs SQLite FTS5 (see the store package notes for PostgreSQL)")
        qvec = self.embedder.embed([query[: lexical.MAX_QUERY_CHARS]])[0] if mode != "fts" else None
        with self._tx("search", write=False) as conn:
            sid = None
            if stream is not None:
                sid = self._stream_id(conn, stream, create=False)
                if sid is None:
                    return []
            flt = Filter(*flt_args, stream_id=sid)
            self._search.refresh(conn, vec_table=self._vec_table)
            fts = self._search.fts(conn, terms, flt, pool) if use_fts else []
            vec = []
            if qvec is not None:
                use_vec0 = self.cfg.vector_search == "vec0" and self._vec_table
                vec = self._search.vector(conn, qvec, flt, pool, use_vec0=use_vec0)
            if mode == "fts":
                ranked = fts
            elif mode == "vector":
                ranked = vec
            else:
                ranked = self._search.fuse(fts, vec)
            ranked = ranked[:limit]
            records = self._fetch_records(conn, [i for i, _ in ranked])
        return [ScoredMemory(records[i], float(s)) for i, s in ranked if i in records]

    # -- maintenance ---------------------------------------------------------------------------
    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok" when healthy); O(size), not for hot paths."""
        se = self._require()
        if not se.is_sqlite:
            return "ok"
        with self._tx("integrity_check", write=False) as conn:
            rows = conn.exec_driver_sql("PRAGMA integrity_check").all()
        return "\n".join(str(r[0]) for r in rows)

    def stats(self) -> dict[str, Any]:
        """Sizes and capabilities, for diagnostics topics and benchmarks."""
        se = self._require()
        with self._tx("stats", write=False) as conn:
            counts = {
                name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
                for name, t in (("entries", _E), ("streams", _S), ("clips", _C), ("tasks", _T), ("adapters", _A))
            }
        size = 0
        if se.is_sqlite and self._path and self._path != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                p = Path(self._path + suffix)
                if p.exists():
                    size += p.stat().st_size
        return {
            **counts,
            "path": self._path,
            "db_bytes": size,
            "embedder": self.embedder.model_id,
            "sqlite_vec": se.has_vec,
            "fts5": se.has_fts,
            "vector_search": self.cfg.vector_search if self._vec_table else "memory",
            "indexed": len(self._search.index),
        }

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
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, insert, select, update

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import lexical
from taskmem_ros.store.browse import BrowseMixin
from taskmem_ros.store.embedding import Embedder, make_embedder, normalize_rows
from taskmem_ros.store.engine import IMMEDIATE, StoreEngine, create_store_engine, database_path
from taskmem_ros.store.errors import StoreError, StoreReadOnlyError, classify
from taskmem_ros.store.evaluations import EvalLogMixin
from taskmem_ros.store.forget import ForgetMixin
from taskmem_ros.store.models import Adapter, Clip, Embedding, MemoryEntry, StoreMeta, Stream, Task
from taskmem_ros.store.pg_search import PgSearcher, vector_literal
from taskmem_ros.store.rawsql import raw_executemany, raw_rows
from taskmem_ros.store.search import Searcher, fetch_vectors, fuse
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


def _row_values(r: dict[str, Any]) -> tuple[Any, ...]:
    """Column values of a new entry row after its id, in the order the INSERTs name them."""
    return (
        r["uid"],
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


def _opt_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int (nanoseconds) or None, got {value!r}")
    return int(value)


class EpisodicStore(ForgetMixin, TaskLogMixin, EvalLogMixin, BrowseMixin):
    """Long-term episodic memory: entries, their embeddings and indexes, tasks, adapters.

    ``read_only=True`` (the viewer, other tools): no migration, no writes; the database
    connection itself refuses them, and an existing database is required."""

    def __init__(
        self, cfg: StoreConfig | None = None, *, embedder: Embedder | None = None, read_only: bool = False
    ) -> None:
        self.cfg = cfg if cfg is not None else StoreConfig()
        self.read_only = bool(read_only)
        self._embedder = embedder
        self._se: StoreEngine | None = None
        self._search = Searcher(self.cfg, self.cfg.embedding_dim)
        self._pg = PgSearcher(self.cfg)
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
        if self.read_only and self._path and not self._path.startswith("file:"):
            if self._path == ":memory:" or not Path(self._path).expanduser().is_file():
                raise StoreError("read-only open needs an existing database file", path=self._path)
        elif self._path and self._path != ":memory:" and not self._path.startswith("file:"):
            parent = Path(self._path).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreReadOnlyError("cannot create the database directory", path=self._path, cause=exc) from exc
            if Path(self._path).expanduser().is_dir():
                raise StoreError("the database path is a directory", path=self._path)
        try:
            se = create_store_engine(self.cfg, read_only=self.read_only)
        except sa.exc.DBAPIError as exc:
            raise classify("cannot open the database", path=self._path, cause=exc.orig or exc) from exc
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"invalid store.url {self.cfg.url!r}", path=self._path, cause=exc) from exc
        self._se = se
        try:
            if self.read_only:
                self._check_schema()
                uid = self._check_meta()
                self._vec_table = se.is_sqlite and self._vec_table_ready()
            else:
                self._migrate()
                uid = self._check_meta()
                if se.is_sqlite:
                    self._ensure_vec_table()
                else:
                    self._ensure_pg_vectors()
            self._search = Searcher(
                self.cfg,
                self.embedder.dim,
                hnsw_path=self._hnsw_path(),
                save=not self.read_only,
                fts_path=self._index_path(".tantivy"),
                store_uid=uid,
                connect=se.engine.connect,
            )
        except BaseException:
            self.close()
            raise
        log.info("episodic store open: %s (sqlite-vec=%s, fts5=%s)", self._path or self.cfg.url, se.has_vec, se.has_fts)
        return self

    def _vector_search_used(self) -> str:
        vs = self.cfg.vector_search
        return "memory" if vs == "vec0" and not self._vec_table else vs

    def _hnsw_path(self) -> str:
        """``<db>.hnsw`` beside a SQLite file ("" for in-memory and server databases)."""
        return self._index_path(".hnsw")

    def _index_path(self, suffix: str) -> str:
        """``<db><suffix>`` beside a SQLite file ("" for in-memory and server databases)."""
        p = self._path
        if not p or p == ":memory:" or p.startswith("file:"):
            return ""
        return str(Path(p).expanduser()) + suffix

    def close(self) -> None:
        se, self._se = self._se, None
        if se is not None:
            se.engine.dispose()
        self._search.reset()
        self._pg.reset()
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
        if write and self.read_only:
            raise StoreReadOnlyError(f"{what} refused: the store was opened read-only", path=self._path or self.cfg.url)
        try:
            with se.engine.connect() as conn:
                if write and se.is_sqlite:
                    conn.execution_options(**{IMMEDIATE: True})
                elif not write and not se.is_sqlite:
                    conn.execution_options(isolation_level="REPEATABLE READ")  # one snapshot per read
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
        acfg.attributes["embedding_dim"] = self.embedder.dim  # vector(dim) column on PostgreSQL
        with self._tx("schema migration", write=True) as conn:
            acfg.attributes["connection"] = conn
            command.upgrade(acfg, "head")

    def _check_schema(self) -> None:
        """Read-only open: the schema must already be the one this code reads (no upgrade)."""
        head = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
        with self._tx("schema check", write=False) as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current != head:
            what = "is not a taskmem store" if current is None else f"has schema {current!r}, this code reads {head!r}"
            raise StoreError(
                f"the database {what}; open it read-write once (the memorizer does) to upgrade", path=self._path
            )

    def _vec_table_ready(self) -> bool:
        """Read-only open: use the LSH codes table only if it was built with today's scheme."""
        if not self._require().has_vec:
            return False
        scheme = f"hyperplane-{LSH_BITS}-{LSH_SEED:x}"
        with self._tx("vector table check", write=False) as conn:
            ddl = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type='table' AND name='vec_entries'"
            ).scalar()
            stored = conn.execute(select(_M.c.value).where(_M.c.key == "lsh")).scalar()
        return ddl is not None and f"bit[{LSH_BITS}]" in ddl and stored == scheme

    def _check_meta(self) -> str:
        """Refuse to search a database with vectors from another embedder; returns the
        database's identity (``store_uid``, made on first open), which derived index files
        beside it (tantivy) must carry."""
        emb = self.embedder
        want = {"embedder": emb.model_id, "embedding_dim": str(emb.dim)}
        with self._tx("store metadata", write=not self.read_only) as conn:
            have = dict(conn.execute(select(_M.c.key, _M.c.value)).all())
            for key, value in want.items():
                if key not in have:
                    if not self.read_only:
                        conn.execute(insert(_M).values(key=key, value=value))
                elif have[key] != value:
                    raise StoreError(
                        f"database was built with {key}={have[key]!r} but this store uses {value!r}; "
                        "use the same store.embedder, or a new database",
                        path=self._path,
                    )
            uid = have.get("store_uid", "")
            if not uid and not self.read_only:
                uid = uuid.uuid4().hex
                conn.execute(insert(_M).values(key="store_uid", value=uid))
        return uid

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

    def _ensure_pg_vectors(self) -> None:
        """Fill ``memory_entries.embedding`` (pgvector) from the authoritative float rows
        where it is missing (entries written before migration 0004)."""
        while True:
            with self._tx("vector column back-fill", write=True) as conn:
                rows = raw_rows(
                    conn,
                    "SELECT e.id, v.vector FROM memory_entries e JOIN embeddings v ON v.entry_id = e.id "
                    "WHERE e.embedding IS NULL ORDER BY e.id LIMIT 5000",
                )
                if not rows:
                    return
                log.info("back-filling %d pgvector embeddings", len(rows))
                raw_executemany(
                    conn,
                    "UPDATE memory_entries SET embedding = ?::vector WHERE id = ?",
                    [(vector_literal(np.frombuffer(r[1], dtype="<f4")), int(r[0])) for r in rows],
                )

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
            if conn.dialect.name == "postgresql":  # concurrent writers may create it at the same moment
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                stmt = pg_insert(_S).values(name=name, created_ns=time.time_ns()).on_conflict_do_nothing()
                conn.execute(stmt)
                sid = conn.execute(select(_S.c.id).where(_S.c.name == name)).scalar()
            else:
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
        self,
        stream: str,
        index: int,
        start_ns: int,
        end_ns: int,
        keyframes: int = 0,
        transcript: str = "",
        *,
        run: str = "",
    ) -> int:
        """Record clip ``index`` of memorizer run ``run`` on ``stream``; returns its id.

        The same (stream, run, index) again updates that row (a retried write); another run
        always gets a new row, so a reboot whose segmenter restarts at 0 appends."""
        stream = self._check_stream(stream)
        if int(end_ns) < int(start_ns):
            raise ValueError(f"clip end_ns={end_ns} is before start_ns={start_ns}")
        run = str(run or "")
        if len(run) > 64:
            raise ValueError(f"clip run id {run[:80]!r} is longer than 64 characters")
        values = {
            "start_ns": int(start_ns),
            "end_ns": int(end_ns),
            "keyframes": int(keyframes),
            "transcript": str(transcript or ""),
        }
        with self._tx("add_clip", write=True) as conn:
            sid = self._stream_id(conn, stream, create=True)
            cid = conn.execute(
                select(_C.c.id).where(_C.c.stream_id == sid, _C.c.run_id == run, _C.c.run_clip_index == int(index))
            ).scalar()
            if cid is None:
                ordinal = conn.execute(select(func.max(_C.c.clip_index)).where(_C.c.stream_id == sid)).scalar()
                row = {
                    "clip_index": 0 if ordinal is None else int(ordinal) + 1,
                    "run_id": run,
                    "run_clip_index": int(index),
                }
                cid = conn.execute(insert(_C).values(stream_id=sid, **row, **values).returning(_C.c.id)).scalar()
            else:
                conn.execute(update(_C).where(_C.c.id == cid).values(**values))
        assert sid is not None and cid is not None
        self._streams[stream] = sid
        return int(cid)

    def clips(self, stream: str | None = None) -> list[dict[str, Any]]:
        """Every clip row (oldest first): provenance of entries, for tools and tests."""
        cols = (
            _C.c.id,
            _S.c.name,
            _C.c.clip_index,
            _C.c.run_id,
            _C.c.run_clip_index,
            _C.c.start_ns,
            _C.c.end_ns,
            _C.c.keyframes,
            _C.c.transcript,
        )
        q = select(*cols).join(_S, _S.c.id == _C.c.stream_id).order_by(_C.c.id)
        if stream is not None:
            q = q.where(_S.c.name == stream)
        names = ("id", "stream", "clip_index", "run", "run_clip_index", "start_ns", "end_ns", "keyframes", "transcript")
        with self._tx("clips", write=False) as conn:
            return [dict(zip(names, row, strict=True)) for row in conn.execute(q)]

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
        uids: Sequence[str] | None = None,
    ) -> list[MemoryRecord]:
        """Commit ``drafts`` in ONE transaction and return them as records (after commit).

        Empty/whitespace drafts are dropped. Embeddings are computed in one batch *before*
        the write lock is taken; ``embeddings`` (one row per draft) skips that, e.g. for
        bulk imports that already have vectors. ``uids`` (one per draft) keeps the stable
        identity of entries copied from another store (see ``store.sync``); new entries get a
        random one.
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
        if uids is not None and len(uids) != len(drafts):
            raise ValueError(f"{len(uids)} uids for {len(drafts)} drafts")
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
                "uid": uuid.uuid4().hex if uids is None else str(uids[i]),
            }
            for i, text in zip(keep, texts, strict=True)
        ]
        with self._tx("add_entries", write=True) as conn:
            sid = self._stream_id(conn, stream, create=True)
            assert sid is not None
            ids = self._write_rows(conn, sid, rows, vecs, codes)
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

    def _write_rows(
        self, conn: Connection, sid: int, rows: list[dict[str, Any]], vecs: np.ndarray, codes: np.ndarray
    ) -> list[int]:
        """Insert complete entry rows (+ float vectors, LSH codes / pgvector) inside ``conn``."""
        for r in rows:
            r["stream_id"] = sid
        dim = int(vecs.shape[1])
        blobs = [v.astype("<f4", copy=False).tobytes() for v in vecs]
        if self._require().is_sqlite:
            ids = self._insert_sqlite(conn, rows, blobs, dim)
        else:
            for r in rows:
                if "\x00" in r["text"]:  # PostgreSQL text cannot hold NUL; keep the memory, mark the byte
                    log.warning("entry text with NUL bytes stored with U+FFFD instead")
                    r["text"] = r["text"].replace("\x00", "\ufffd")
            ids = self._insert_pg(conn, rows, blobs, vecs, dim)
        if self._vec_table:
            meta = [(i, sid, r["start_ns"], r["end_ns"]) for i, r in zip(ids, rows, strict=True)]
            self._insert_codes(conn, meta, codes)
        return ids

    def import_entries(self, stream: str, rows: Sequence[dict[str, Any]], vectors: np.ndarray) -> int:
        """Copy complete entries (with their ``uid``, times, provenance and ``created_ns``)
        from another store; entries whose uid is already here are skipped. One transaction;
        returns how many were added. Entries forgotten here (tombstoned uids) are skipped too.
        Used by ``store.sync``."""
        stream = self._check_stream(stream)
        if len(rows) != len(vectors):
            raise ValueError(f"{len(rows)} rows for {len(vectors)} vectors")
        if not rows:
            return 0
        with self._tx("import_entries", write=True) as conn:
            uids = [str(r["uid"]) for r in rows]
            have: set[str] = set()
            for k in range(0, len(uids), _IN_CHUNK):
                have.update(conn.execute(select(_E.c.uid).where(_E.c.uid.in_(uids[k : k + _IN_CHUNK]))).scalars())
            have |= self.tombstone_uids(conn, uids)  # forgotten here: never brought back
            keep = []
            for i, u in enumerate(uids):
                if u not in have:
                    have.add(u)  # a uid repeated within the batch is added once
                    keep.append(i)
            if not keep:
                return 0
            sid = self._stream_id(conn, stream, create=True)
            assert sid is not None
            new = [dict(rows[i]) for i in keep]
            vecs = normalize_rows(np.asarray(vectors, np.float32)[keep])
            self._write_rows(conn, sid, new, vecs, lsh_codes(vecs))
        self._streams[stream] = sid
        return len(keep)

    @classmethod
    def _insert_pg(
        cls, conn: Connection, rows: list[dict[str, Any]], blobs: list[bytes], vecs: np.ndarray, dim: int
    ) -> list[int]:
        """Ids from the sequence (unique across concurrent writers), then one pipelined
        executemany per table; the pgvector column is written with the row, in the same
        transaction, so HNSW and the table can never disagree."""
        ids = [
            int(r[0])
            for r in raw_rows(
                conn,
                "SELECT nextval(pg_get_serial_sequence('memory_entries', 'id')) FROM generate_series(1, ?)",
                (len(rows),),
            )
        ]
        raw_executemany(
            conn,
            "INSERT INTO memory_entries (id, uid, stream_id, clip_id, kind, text, start_ns, end_ns, source, model_id, "
            "adapter_id, confidence, created_ns, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::vector)",
            [(i, *_row_values(r), vector_literal(v)) for i, r, v in zip(ids, rows, vecs, strict=True)],
        )
        raw_executemany(
            conn,
            "INSERT INTO embeddings (entry_id, dim, vector) VALUES (?, ?, ?)",
            [(i, dim, b) for i, b in zip(ids, blobs, strict=True)],
        )
        return ids

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
            "INSERT INTO memory_entries (id, uid, stream_id, clip_id, kind, text, start_ns, end_ns, source, model_id, "
            "adapter_id, confidence, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, *_row_values(r)) for i, r in zip(ids, rows, strict=True)],
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
        return self._entry_aggregate("count_entries", func.count(), stream)

    def latest_stamp_ns(self, stream: str | None = None) -> int:
        """End of the newest observation in memory (0 when empty): what "now" is for a reader
        without a clock (use_sim_time before the first /clock, an offline tool)."""
        return self._entry_aggregate("latest_stamp_ns", func.max(_E.c.end_ns), stream)

    def _entry_aggregate(self, what: str, agg: Any, stream: str | None) -> int:
        """One aggregate over memory entries, optionally of one stream (0 for an unknown one)."""
        with self._tx(what, write=False) as conn:
            q = select(agg).select_from(_E)
            if stream is not None:
                sid = self._stream_id(conn, stream, create=False)
                if sid is None:
                    return 0
                q = q.where(_E.c.stream_id == sid)
            return int(conn.execute(q).scalar() or 0)

    # -- search ------------------------------------------------------------------------------
    def warm(self, *, wait: bool = False) -> int:
        """Load the embedding model and the RAM vector index now (a cold 1M-entry store takes a
        few seconds, MiniLM a few more on a busy CPU) rather than on the first question;
        returns the number of entries indexed. ``wait``: also wait for an HNSW index being
        loaded or built in the background (minutes for a large store built from scratch)."""
        self.embedder.embed(["warm up"])
        if not self._require().is_sqlite:
            return self.count_entries()  # PostgreSQL searches its own indexes
        with self._tx("warm", write=False) as conn:
            self._search.refresh(conn, vec_table=self._vec_table, fulltext=self._require().has_fts)
        if wait and self._search.wait_ready():
            with self._tx("warm", write=False) as conn:
                self._search.refresh(conn, vec_table=self._vec_table, fulltext=self._require().has_fts)
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
        use_fts = mode in ("hybrid", "fts") and (se.has_fts or not se.is_sqlite)
        if mode == "fts" and not use_fts:
            raise StoreError("full-text search needs SQLite FTS5, which this SQLite build lacks")
        qvec = self.embedder.embed([query[: lexical.MAX_QUERY_CHARS]])[0] if mode != "fts" else None
        with self._tx("search", write=False) as conn:
            sid = None
            if stream is not None:
                sid = self._stream_id(conn, stream, create=False)
                if sid is None:
                    return []
            flt = Filter(*flt_args, stream_id=sid)
            fts: list[tuple[int, float]] = []
            vec: list[tuple[int, float]] = []
            if se.is_sqlite:
                self._search.refresh(conn, vec_table=self._vec_table, fulltext=use_fts)
                fts = self._search.fts(conn, terms, flt, pool) if use_fts else []
                if qvec is not None:
                    use_vec0 = self.cfg.vector_search == "vec0" and self._vec_table
                    vec = self._search.vector(conn, qvec, flt, pool, use_vec0=use_vec0)
            else:
                fts = self._pg.fts(conn, query, flt, pool) if use_fts else []
                if qvec is not None:
                    vec = self._pg.vector(conn, qvec, flt, pool)
            if mode == "fts":
                ranked = fts
            elif mode == "vector":
                ranked = vec
            else:
                ranked = fuse(fts, vec, self.cfg.fts_weight, self.cfg.vector_weight)
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
            "backend": "sqlite" if se.is_sqlite else "postgresql",
            "vector_search": self._vector_search_used() if se.is_sqlite else "pgvector",
            "indexed": len(self._search.index) if se.is_sqlite else counts["entries"],
        }

"""Engine creation: the right SQLite driver, per-connection pragmas, sqlite-vec loading.

The stdlib ``sqlite3`` of many Python builds cannot load extensions, so ``pysqlite3``
(a wheel with a modern SQLite and ``enable_load_extension``) is used when importable.
Every new connection gets WAL + ``synchronous=NORMAL`` (a committed transaction survives
``kill -9`` of the process; only an OS crash/power loss can drop the last commits),
foreign keys and a busy timeout, so a locked database fails after a bounded wait instead
of hanging.

Transactions: the driver is put in autocommit mode and SQLAlchemy's ``begin`` emits
``BEGIN`` itself (the documented pysqlite recipe); writers ask for ``BEGIN IMMEDIATE`` so
two processes never deadlock upgrading read locks to write locks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from taskmem_ros.config import StoreConfig

log = logging.getLogger(__name__)

IMMEDIATE = "taskmem_begin_immediate"  # connection execution option: writers take the lock up front
_warned_fallback = False


def db_url(db: str) -> str:
    """What every ``--db`` option takes: any SQLAlchemy URL as given, or a bare SQLite path
    (``~`` expanded, made absolute so a later ``chdir`` cannot move the store)."""
    return db if "://" in db else f"sqlite:///{Path(db).expanduser().resolve()}"


def sqlite_module() -> tuple[ModuleType, bool]:
    """(DB-API module, whether it can load extensions): pysqlite3 first, stdlib second."""
    try:
        import pysqlite3.dbapi2 as mod  # type: ignore[import-not-found,unused-ignore]

        return mod, True
    except ImportError:
        import sqlite3 as std

        probe = std.connect(":memory:")
        try:
            can_load = hasattr(probe, "enable_load_extension")
        finally:
            probe.close()
        return std, can_load


def _load_vec(dbapi_conn: Any) -> bool:
    try:
        import sqlite_vec

        dbapi_conn.enable_load_extension(True)
        try:
            sqlite_vec.load(dbapi_conn)
        finally:
            dbapi_conn.enable_load_extension(False)
        return True
    except Exception as exc:  # missing package, no extension support, incompatible binary
        log.debug("sqlite-vec not loaded: %s", exc)
        return False


@dataclass
class StoreEngine:
    """An Engine plus what the store needs to know about it."""

    engine: Engine
    url: str
    path: str  # file path for SQLite ("" for other backends, ":memory:" for in-memory)
    is_sqlite: bool
    has_vec: bool  # sqlite-vec loaded on every connection
    has_fts: bool  # FTS5 compiled in


def database_path(url: str) -> str:
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return ""
    return u.database or ":memory:"


def create_store_engine(cfg: StoreConfig, *, read_only: bool = False) -> StoreEngine:
    """Build the engine for ``cfg.url``; SQLite gets pysqlite3, pragmas and sqlite-vec.

    ``read_only``: the database itself refuses writes on every connection (SQLite
    ``query_only``, PostgreSQL read-only sessions), so a viewer cannot change memory even
    through a bug of ours. WAL readers take no lock that blocks the memorizer's writes."""
    url = make_url(cfg.url)
    if url.get_backend_name() != "sqlite":
        engine = create_engine(cfg.url, pool_pre_ping=True)
        if read_only and url.get_backend_name() == "postgresql":

            @event.listens_for(engine, "connect")
            def _pg_read_only(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                try:
                    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                finally:
                    cur.close()
                dbapi_conn.commit()

        return StoreEngine(engine, cfg.url, "", False, False, False)

    global _warned_fallback
    module, can_load = sqlite_module()
    path = database_path(cfg.url)
    memory = path in ("", ":memory:") or path.startswith("file::memory:")
    kwargs: dict[str, Any] = {
        "module": module,
        "connect_args": {"check_same_thread": False, "timeout": cfg.busy_timeout_ms / 1000.0},
    }
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared in-memory database, not one per connection
    engine = create_engine(url.set(drivername="sqlite+pysqlite"), **kwargs)
    state = {"vec": can_load}

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module doc)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(cfg.busy_timeout_ms)}")
            if not memory and not read_only:
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA temp_store = MEMORY")
            cur.execute("PRAGMA cache_size = -32768")  # 32 MiB: index b-trees of ~1M entries stay hot
            if read_only:
                cur.execute("PRAGMA query_only = ON")
            if cfg.max_db_mb > 0:
                page_size = cur.execute("PRAGMA page_size").fetchone()[0]
                pages = max(1, math.ceil(cfg.max_db_mb * 1024 * 1024 / page_size))
                cur.execute(f"PRAGMA max_page_count = {pages}")
        finally:
            cur.close()
        if state["vec"]:
            state["vec"] = _load_vec(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    # Open one connection now so driver problems (corrupt file, unreadable path) surface here.
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        has_fts = _probe_fts(dbapi)
    if not state["vec"] and not _warned_fallback:
        _warned_fallback = True
        log.warning(
            "sqlite-vec could not be loaded (driver %s); vector search uses the in-RAM numpy index only",
            module.__name__,
        )
    if path and not memory:
        path = str(Path(path).expanduser())
    return StoreEngine(engine, cfg.url, path, True, bool(state["vec"]), has_fts)


def _probe_fts(dbapi_conn: Any) -> bool:
    cur = dbapi_conn.cursor()
    try:
        rows = cur.execute("PRAGMA compile_options").fetchall()
        return any(r[0] == "ENABLE_FTS5" for r in rows) or _fts_works(cur)
    finally:
        cur.close()


def _fts_works(cur: Any) -> bool:
    try:
        cur.execute("CREATE VIRTUAL TABLE temp.__fts_probe USING fts5(x)")
        cur.execute("DROP TABLE temp.__fts_probe")
        return True
    except Exception:
        return False

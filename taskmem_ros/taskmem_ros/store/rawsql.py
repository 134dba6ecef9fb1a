"""DB-API cursors under a SQLAlchemy connection, for the two hot paths where Row objects cost
too much: bulk reads (1M rows spend 10 s in Row objects otherwise) and pipelined bulk inserts
(psycopg pipelines ``executemany``). SQL is written with ``?`` placeholders; on PostgreSQL they
become ``%s``. Both run inside ``conn``'s transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection


@contextmanager
def _cursor(conn: Connection, sql: str) -> Iterator[tuple[Any, str]]:
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        yield cur, sql
    finally:
        cur.close()


def raw_rows(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Plain tuples straight from the DB-API cursor."""
    with _cursor(conn, sql) as (cur, q):
        cur.execute(q, params)
        return list(cur.fetchall())


def raw_executemany(conn: Connection, sql: str, params: Sequence[tuple[Any, ...]]) -> None:
    """Driver-level executemany."""
    with _cursor(conn, sql) as (cur, q):
        cur.executemany(q, params)

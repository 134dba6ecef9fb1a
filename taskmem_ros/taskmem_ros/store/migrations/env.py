"""Alembic environment: runs on the connection the store hands over (same driver, pragmas
and sqlite-vec as the store itself), or on ``sqlalchemy.url`` when used from the CLI."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from taskmem_ros.store.models import Base

_SQLITE_VIRTUAL = ("memory_fts", "vec_entries")
_PG_SEARCH = ("tsv", "embedding", "ix_memory_entries_tsv", "ix_memory_entries_embedding")


def include_object(obj, name, type_, reflected, compare_to):
    """Leave FTS5/vec0 virtual tables (and their shadow tables) and the PostgreSQL search
    columns/indexes to the migrations' raw SQL."""
    if type_ == "table" and name and name.startswith(_SQLITE_VIRTUAL):
        return False
    return not (type_ in ("column", "index") and name in _PG_SEARCH)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


config = context.config
connection = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    _run(connection)
else:
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store.engine import create_store_engine

    url = config.get_main_option("sqlalchemy.url") or "sqlite:///taskmem.db"
    engine = create_store_engine(StoreConfig(url=url, embedder="hash")).engine
    with engine.connect() as conn:
        _run(conn)
        conn.commit()

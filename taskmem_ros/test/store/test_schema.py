"""Alembic creates exactly the ORM schema plus the SQLite virtual tables and triggers."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.store.models import Base


def _include(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name.startswith(("memory_fts", "vec_entries")))


def test_migration_creates_orm_schema_and_virtual_tables(store: EpisodicStore) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _include, "compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
        names = set(inspect(conn).get_table_names())
        assert {"streams", "clips", "memory_entries", "embeddings", "tasks", "adapters", "store_meta"} <= names
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0005"
        sql = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'trigger')").all())
        assert "fts5" in sql["memory_fts"] and "content='memory_entries'" in sql["memory_fts"]
        assert "vec0" in sql["vec_entries"] and "bit[512]" in sql["vec_entries"]
        assert {"memory_entries_fts_ai", "memory_entries_fts_ad", "memory_entries_fts_au"} <= set(sql)
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


@pytest.mark.backends("postgresql")
def test_postgresql_schema_has_search_columns_and_indexes(store: EpisodicStore) -> None:
    def include_object(obj, name, type_, reflected, compare_to):  # the PostgreSQL-only search columns: raw SQL
        return not (
            type_ in ("column", "index")
            and name in ("tsv", "embedding", "ix_memory_entries_tsv", "ix_memory_entries_embedding")
        )

    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []  # the ORM tables, exactly
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0005"
        cols = dict(
            conn.exec_driver_sql(
                "SELECT column_name, coalesce(generation_expression, '') FROM information_schema.columns "
                "WHERE table_name = 'memory_entries' AND column_name IN ('tsv', 'embedding', 'uid')"
            ).all()
        )
        assert "to_tsvector('simple'" in cols["tsv"] and set(cols) == {"tsv", "embedding", "uid"}
        idx = dict(
            conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'memory_entries'").all()
        )
        assert "USING gin (tsv)" in idx["ix_memory_entries_tsv"]
        assert "USING hnsw (embedding vector_cosine_ops)" in idx["ix_memory_entries_embedding"]
        assert "UNIQUE" in idx["ix_memory_entries_uid"]
        dim = conn.exec_driver_sql(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'memory_entries'::regclass AND attname = 'embedding'"
        ).scalar()
        assert dim == "vector(384)"


def test_reopen_is_idempotent_and_keeps_data(tmp_path) -> None:
    cfg = StoreConfig(url=f"sqlite:///{tmp_path / 'x.db'}", embedder="hash")
    with EpisodicStore(cfg) as s:
        s.ensure_stream("robot")
    with EpisodicStore(cfg) as s:
        assert s.streams() == ["robot"]


def test_fts_trigger_follows_text_updates_and_deletes(store: EpisodicStore) -> None:
    from taskmem_ros.types import MemoryDraft

    rec = store.add_entries("robot", [MemoryDraft("a purple umbrella", end_ns=1)])[0]
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE memory_entries SET text = 'a green kettle' WHERE id = ?", (rec.id,))
    assert store.search("umbrella", mode="fts") == []
    assert [h.record.id for h in store.search("kettle", mode="fts")] == [rec.id]
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM vec_entries WHERE rowid = ?", (rec.id,))
        conn.exec_driver_sql("DELETE FROM memory_entries WHERE id = ?", (rec.id,))
    assert store.search("kettle", mode="fts") == []


def test_embedder_mismatch_is_refused(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    EpisodicStore(StoreConfig(url=url, embedder="hash")).open().close()
    with pytest.raises(StoreError, match="embedder"):
        EpisodicStore(StoreConfig(url=url, embedder="hash", embedding_dim=128)).open()

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
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0002"
        sql = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'trigger')").all())
        assert "fts5" in sql["memory_fts"] and "content='memory_entries'" in sql["memory_fts"]
        assert "vec0" in sql["vec_entries"] and "bit[512]" in sql["vec_entries"]
        assert {"memory_entries_fts_ai", "memory_entries_fts_ad", "memory_entries_fts_au"} <= set(sql)
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


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

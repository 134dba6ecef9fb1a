"""A read-only store (the viewer's): no migration, no writes, the database itself refuses them,
and it reads a database the memorizer is writing without blocking it (WAL)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, StoreError, StoreReadOnlyError
from taskmem_ros.store.browse import stored_meta
from taskmem_ros.store.engine import IMMEDIATE
from taskmem_ros.types import MemoryDraft

S = 1_000_000_000


def _cfg(db: Path, **kw: object) -> StoreConfig:
    return StoreConfig(url=f"sqlite:///{db}", embedder="hash", **kw)  # type: ignore[arg-type]


def _writer(db: Path) -> EpisodicStore:
    store = EpisodicStore(_cfg(db)).open()
    cid = store.add_clip("robot", 0, 0, 10 * S, keyframes=2, transcript="the battery is in the cabinet")
    store.add_entries(
        "robot",
        [MemoryDraft(text="The spare battery is in the blue cabinet.", start_ns=0, end_ns=10 * S, source="speech")],
        clip_id=cid,
    )
    return store


def test_read_only_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    _writer(db).close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    with EpisodicStore(_cfg(db), read_only=True) as ro:
        assert [r.text for r in ro.timeline()] == ["The spare battery is in the blue cabinet."]
        assert ro.search("battery")[0].record.source == "speech"
        (clip,) = ro.clips_by_id([1]).values()
        assert (clip.stream, clip.index, clip.keyframes) == ("robot", 0, 2)
        assert [s.entries for s in ro.stream_spans()] == [1]
        with pytest.raises(StoreReadOnlyError, match="read-only"):
            ro.add_entries("robot", [MemoryDraft(text="x", start_ns=0, end_ns=1)])
        with pytest.raises(StoreReadOnlyError):
            ro.log_task("q", asked_at_ns=1)
        # below our API too: the connection itself is query-only
        with ro.engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.exec_driver_sql("DELETE FROM memory_entries")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert stored_meta(_cfg(db))["embedder"] == "hash-v1-384"


def test_read_only_needs_an_existing_current_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="existing database"):
        EpisodicStore(_cfg(tmp_path / "none.db"), read_only=True).open()
    assert not (tmp_path / "none.db").exists()
    plain = tmp_path / "plain.db"
    eng = sa.create_engine(f"sqlite:///{plain}")
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
    eng.dispose()
    with pytest.raises(StoreError, match="not a taskmem store"):
        EpisodicStore(_cfg(plain), read_only=True).open()
    db = tmp_path / "m.db"
    _writer(db).close()
    with pytest.raises(StoreError, match="embedder"):
        EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="hash", embedding_dim=64), read_only=True).open()


def test_reader_and_writer_do_not_block_each_other(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    writer = _writer(db)
    with EpisodicStore(_cfg(db, busy_timeout_ms=0), read_only=True) as ro:
        assert ro.count_entries() == 1
        # a writer mid-transaction (holding the write lock) does not stop reads of the last commit
        with writer.engine.connect() as conn:
            conn.execution_options(**{IMMEDIATE: True})
            tx = conn.begin()  # BEGIN IMMEDIATE: the write lock is held from here
            conn.exec_driver_sql("UPDATE memory_entries SET source = 'x'")
            assert [r.source for r in ro.timeline()] == ["speech"]
            tx.rollback()
        # and the reader holds nothing between calls: a writer that will not wait still commits
        nowait = EpisodicStore(_cfg(db, busy_timeout_ms=0)).open()
        nowait.add_entries(
            "robot", [MemoryDraft(text="My keys are in the kitchen drawer.", start_ns=10 * S, end_ns=20 * S)]
        )
        nowait.close()
        assert ro.count_entries() == 2
        assert ro.search("keys drawer")[0].record.text.startswith("My keys")
    writer.close()

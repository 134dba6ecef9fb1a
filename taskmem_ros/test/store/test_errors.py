"""Failures surface as StoreError subclasses with the path and cause, fast, and never
damage what was committed before."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from store_helpers import drafts

from taskmem_ros.config import ConfigError, StoreConfig
from taskmem_ros.store import (
    EpisodicStore,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
)
from taskmem_ros.types import MemoryDraft


def _cfg(path: Path | str, **kw: object) -> StoreConfig:
    return StoreConfig(url=f"sqlite:///{path}", embedder="hash", **kw)  # type: ignore[arg-type]


def test_unwritable_directory(tmp_path: Path) -> None:
    # /proc is read-only even for root, so this holds in containers too
    with pytest.raises(StoreReadOnlyError) as err:
        EpisodicStore(_cfg("/proc/taskmem_test/mem.db")).open()
    assert err.value.path == "/proc/taskmem_test/mem.db" and err.value.cause is not None
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    with pytest.raises(StoreReadOnlyError, match="not_a_dir"):
        EpisodicStore(_cfg(blocker / "mem.db")).open()


def test_directory_as_database_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory"):
        EpisodicStore(_cfg(tmp_path)).open()


_OPEN_READ_ONLY = """
import sys
from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, StoreReadOnlyError
try:
    EpisodicStore(StoreConfig(url="sqlite:///" + sys.argv[1], embedder="hash")).open()
except StoreReadOnlyError as exc:
    print("read-only:", exc)
    sys.exit(0)
sys.exit("opened a database whose files and directory are read-only")
"""


def test_read_only_file_permissions(tmp_path: Path) -> None:
    """File modes deny writing. Root ignores them (CAP_DAC_OVERRIDE), so as root (CI) the open
    runs in a child without that capability (util-linux ``setpriv``)."""
    import subprocess
    import sys

    db = tmp_path / "ro.db"
    EpisodicStore(_cfg(db)).open().close()
    for p in tmp_path.iterdir():
        p.chmod(0o444)
    tmp_path.chmod(0o555)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"] if os.geteuid() == 0 else []
    try:
        proc = subprocess.run(
            [*drop, sys.executable, "-c", _OPEN_READ_ONLY, str(db)],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        tmp_path.chmod(0o755)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "read-only:" in proc.stdout and str(db) in proc.stdout


def test_read_only_database(tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    with EpisodicStore(_cfg(db)) as s:
        s.add_entries("robot", drafts(["kept"]))
    ro = StoreConfig(url=f"sqlite:///file:{db}?mode=ro&uri=true", embedder="hash")
    with EpisodicStore(ro) as s:  # a query-only node may open it and read...
        assert [r.text for r in s.timeline()] == ["kept"]
        assert s.search("kept")[0].record.text == "kept"
        with pytest.raises(StoreReadOnlyError, match="readonly") as err:  # ...but not write
            s.add_entries("robot", drafts(["lost"]))
        assert str(db) in err.value.path


def test_corrupt_file(tmp_path: Path) -> None:
    db = tmp_path / "junk.db"
    db.write_bytes(os.urandom(64 * 1024))
    t0 = time.monotonic()
    with pytest.raises(StoreCorruptError) as err:
        EpisodicStore(_cfg(db)).open()
    assert time.monotonic() - t0 < 5 and str(db) in str(err.value)


def test_damaged_pages_are_reported_not_returned(tmp_path: Path) -> None:
    db = tmp_path / "dmg.db"
    with EpisodicStore(_cfg(db)) as s, s.engine.connect() as conn:
        s.add_entries("robot", drafts([f"memory number {i} " + "x" * 200 for i in range(400)]))
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
    raw = bytearray(db.read_bytes())
    page = 4096
    for p in range(5, len(raw) // page):  # keep the schema pages, trash the rest
        raw[p * page : p * page + 100] = os.urandom(100)
    db.write_bytes(bytes(raw))
    with pytest.raises(StoreError), EpisodicStore(_cfg(db)) as s:
        s.timeline()
        s.search("memory number 7")
        assert s.integrity_check() == "ok"


def test_full_database_rolls_back_and_keeps_earlier_commits(tmp_path: Path) -> None:
    db = tmp_path / "full.db"
    with EpisodicStore(_cfg(db)) as s:
        first = s.add_entries("robot", drafts([f"early memory {i}" for i in range(50)]))
    size_mb = db.stat().st_size / 2**20
    with EpisodicStore(_cfg(db, max_db_mb=size_mb + 0.2)) as s:
        with pytest.raises(StoreFullError) as err:
            for k in range(200):
                s.add_entries("robot", drafts([f"batch {k} entry {i} " + "y" * 300 for i in range(100)]))
        assert "full" in str(err.value) and str(db) in str(err.value)
        n = s.count_entries()
        assert n % 100 == 50  # whole batches only: the failed one rolled back entirely
        assert s.get_entries([r.id for r in first]) == first
        assert s.integrity_check() == "ok"
        assert s.search("early memory 7", mode="fts")
    with EpisodicStore(_cfg(db)) as s:  # without the cap it works again
        s.add_entries("robot", drafts(["after the cap"]))
        assert s.count_entries() == n + 1


def test_failed_insert_rolls_back_whole_batch(store: EpisodicStore) -> None:
    kept = store.add_entries("robot", drafts(["committed before"]))
    with pytest.raises(StoreError, match="FOREIGN KEY"):
        store.add_entries("robot", [MemoryDraft("orphan", end_ns=1)] * 3, clip_id=987654)
    assert store.count_entries() == 1 and store.get_entries([kept[0].id]) == kept
    assert [h.record.text for h in store.search("orphan", mode="fts")] == []
    assert len(store.search("committed before", mode="vector")) == 1


def test_locked_database_times_out(tmp_path: Path) -> None:
    db = tmp_path / "lock.db"
    holder = EpisodicStore(_cfg(db)).open()
    waiter = EpisodicStore(_cfg(db, busy_timeout_ms=200)).open()
    release = threading.Event()
    locked = threading.Event()

    def hold() -> None:
        with holder.engine.connect() as conn:
            conn.execution_options(taskmem_begin_immediate=True)  # take the write lock now
            with conn.begin():
                locked.set()
                release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert locked.wait(5)
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError, match="locked"):
            waiter.add_entries("robot", drafts(["blocked"]))
        assert time.monotonic() - t0 < 3
        assert waiter.search("anything") == []  # readers are not blocked by a writer (WAL)
    finally:
        release.set()
        t.join()
        holder.close()
        waiter.close()


def test_config_errors_quote_value() -> None:
    with pytest.raises(ConfigError, match="'sql'"):
        StoreConfig(vector_search="sql")
    with pytest.raises(ConfigError, match="-1"):
        StoreConfig(max_db_mb=-1)

"""Without an extension-capable driver (stdlib sqlite3 only) the store still works: FTS5 as
usual, vectors through the RAM index; sqlite-vec's table is created/back-filled later."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import taskmem_ros
from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import MemoryDraft

NO_PYSQLITE3 = textwrap.dedent(
    """
    import json, sys
    sys.modules["pysqlite3"] = None          # behave like a system without the wheel:
    sys.modules["pysqlite3.dbapi2"] = None   # stdlib sqlite3, which cannot load extensions
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.types import MemoryDraft

    with EpisodicStore(StoreConfig(url=sys.argv[1], embedder="hash", vector_search="vec0")) as s:
        s.add_entries("robot", [MemoryDraft(t, start_ns=i, end_ns=i + 1) for i, t in enumerate(sys.argv[2:])])
        print(json.dumps({
            "stats": s.stats(),
            "vector": [h.record.text for h in s.search("red mug shelf", mode="vector", limit=1)],
            "fts": [h.record.text for h in s.search("parcel", mode="fts")],
        }))
    """
)

TEXTS = ["The red mug is on the shelf", "A parcel arrived", "Bob watered the plants"]


def _run(url: str, texts: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(taskmem_ros.__file__).resolve().parents[1]))
    out = subprocess.run(
        [sys.executable, "-c", NO_PYSQLITE3, url, *texts], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_stdlib_sqlite_without_extensions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    res = _run(url, TEXTS)
    assert res["stats"]["sqlite_vec"] is False and res["stats"]["vector_search"] == "memory"
    assert res["vector"] == [TEXTS[0]] and res["fts"] == [TEXTS[1]]
    # Opened again with pysqlite3 + sqlite-vec: vec_entries is created and back-filled.
    with EpisodicStore(StoreConfig(url=url, embedder="hash", vector_search="vec0")) as s:
        assert s.stats()["vector_search"] == "vec0"
        assert [h.record.text for h in s.search("red mug shelf", mode="vector", limit=1)] == [TEXTS[0]]
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM vec_entries_rowids").scalar() == 3


def test_rows_written_without_extension_are_back_filled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as s:  # creates vec_entries
        s.add_entries("robot", [])
    _run(url, TEXTS)  # writes while vec0 cannot be loaded
    with EpisodicStore(StoreConfig(url=url, embedder="hash", vector_search="vec0")) as s:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM vec_entries_rowids").scalar() == 3
        assert [h.record.text for h in s.search("watered plants", mode="vector", limit=1)] == [TEXTS[2]]
        assert s.integrity_check() == "ok"


def test_codes_from_an_older_lsh_scheme_are_rebuilt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as s:
        s.add_entries("robot", [MemoryDraft(t, end_ns=1) for t in TEXTS])
        with s.engine.begin() as conn:  # what a 384-bit build left behind
            conn.exec_driver_sql("DROP TABLE vec_entries")
            conn.exec_driver_sql(
                "CREATE VIRTUAL TABLE vec_entries USING vec0("
                "stream_id integer partition key, start_ns integer, end_ns integer, code bit[384])"
            )
            conn.exec_driver_sql("UPDATE store_meta SET value = 'hyperplane-384-0' WHERE key = 'lsh'")
    with EpisodicStore(StoreConfig(url=url, embedder="hash", vector_search="vec0")) as s:
        with s.engine.connect() as conn:
            assert "bit[512]" in conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name='vec_entries'").scalar()
            assert conn.exec_driver_sql("SELECT count(*) FROM vec_entries_rowids").scalar() == 3
        assert [h.record.text for h in s.search("red mug shelf", mode="vector", limit=1)] == [TEXTS[0]]
        s.add_entries("robot", [MemoryDraft("a new memory after the rebuild", end_ns=2)])

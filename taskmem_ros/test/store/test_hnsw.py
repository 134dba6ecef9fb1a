"""The embedded store's HNSW vector index: filtered recall, persistence beside the file, and
repair on open after kill -9, deleted rows, a replaced database or a corrupt index file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import taskmem_ros
from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, HashEmbedder
from taskmem_ros.store.vector_index import Filter
from taskmem_ros.types import NS_PER_S, MemoryDraft

N = 3000  # > the 400 LSH candidates the store re-ranks, so the HNSW tier answers unfiltered queries
WORDS = [
    "mug",
    "keys",
    "laptop",
    "charger",
    "wallet",
    "umbrella",
    "kettle",
    "scissors",
    "drill",
    "lamp",
    "cart",
    "crate",
    "pallet",
    "box",
]
PLACES = [
    "kitchen",
    "hallway",
    "garage",
    "office",
    "bedroom",
    "balcony",
    "pantry",
    "attic",
    "porch",
    "dock",
    "bay",
    "shelf",
]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{rng.choice(WORDS)} near the {rng.choice(PLACES)} item {i} tag{rng.integers(500)}" for i in range(n)]


def _fill(store: EpisodicStore, texts: list[str], start: int = 0) -> None:
    for lo in range(0, len(texts), 500):
        chunk = texts[lo : lo + 500]
        store.add_entries(
            "robot",
            [
                MemoryDraft(t, start_ns=(start + lo + i) * NS_PER_S, end_ns=(start + lo + i + 1) * NS_PER_S)
                for i, t in enumerate(chunk)
            ],
        )


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _recall(store: EpisodicStore, queries: list[str], as_of_ns: int | None) -> float:
    """recall@10 of vector search against exact cosine over every visible stored vector."""
    recs = store.timeline(as_of_ns=as_of_ns)
    ids = [r.id for r in recs]
    mat = store.vectors(ids)
    emb = store.embedder.embed(queries)
    got = 0.0
    for q, qv in zip(queries, emb, strict=True):
        truth = {ids[j] for j in np.argsort(-(mat @ qv), kind="stable")[:10]}
        hits = store.search(q, mode="vector", as_of_ns=as_of_ns, limit=10)
        assert all(h.record.end_ns <= (as_of_ns or 2**62) for h in hits)
        got += len(truth & {h.record.id for h in hits}) / 10
    return got / len(queries)


def test_filtered_hnsw_recall_and_persistence(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    queries = [f"where is the {w} in the {p}" for w, p in zip(WORDS, PLACES, strict=False)]
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        _fill(store, _texts(N))
        assert store.stats()["vector_search"] == "hnsw" and store.warm() == N
        qv = store.embedder.embed(["drill"])[0]
        assert store._search._hnsw_vector(qv, Filter(), 10) is not None  # this size is answered by HNSW
        assert store._search._hnsw_vector(qv, Filter(as_of_ns=N // 20 * NS_PER_S), 10) is None  # 5 %: LSH tier
        for as_of in (None, N // 2 * NS_PER_S, N // 20 * NS_PER_S):  # 100 %, 50 %, 5 % visible
            assert _recall(store, queries, as_of) >= 0.95, as_of
        before = [(h.record.id, round(h.score, 4)) for h in store.search("drill in the garage", mode="vector")]
    index_file = Path(str(db) + ".hnsw")
    assert index_file.is_file()  # saved on close
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        assert store.warm() == N
        assert store._search.hnsw is not None and store._search.hnsw.unsaved == 0  # loaded, nothing rebuilt
        after = [(h.record.id, round(h.score, 4)) for h in store.search("drill in the garage", mode="vector")]
    assert after == before


def test_kill_9_then_reopen_repairs_the_index(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        _fill(store, _texts(N))
        store.warm()  # index built, saved on close below with N entries
    writer = textwrap.dedent(
        """
        import sys
        from taskmem_ros.config import StoreConfig
        from taskmem_ros.store import EpisodicStore
        from taskmem_ros.types import MemoryDraft
        store = EpisodicStore(StoreConfig(url=sys.argv[1], embedder="hash", vector_search="hnsw")).open()
        i = 0
        while True:
            recs = store.add_entries("robot", [MemoryDraft(f"late pallet {i} part {k}", start_ns=10**15 + i,
                                                           end_ns=10**15 + i + 1) for k in range(5)])
            store.search("pallet", mode="vector")  # the writer's own index grows too, unsaved
            print(recs[-1].id, flush=True)
            i += 1
        """
    )
    env = dict(os.environ, PYTHONPATH=str(Path(taskmem_ros.__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", writer, _url(db)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 40 and time.monotonic() < deadline:
        if not proc.stdout.readline():
            break
        seen += 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert seen >= 40
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        total = store.count_entries()
        assert total >= N + 5 * seen
        assert store.warm() == total
        hnsw = store._search.hnsw
        assert hnsw is not None and len(hnsw) == total  # the saved N plus the catch-up, exactly
        late = store.timeline(as_of_ns=None, start_ns=10**15)
        for rec in late[:: max(1, len(late) // 10)]:
            hits = store.search(rec.text, mode="vector", limit=5)
            assert rec.text in [h.record.text for h in hits]


def test_deleted_rows_and_replaced_file_never_come_back(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    texts = _texts(N)
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        _fill(store, texts)
        store.warm()
    with sqlite3.connect(db) as conn:  # another tool deletes a third of the entries
        conn.execute("DELETE FROM embeddings WHERE entry_id % 3 = 0")
        conn.execute("DELETE FROM memory_entries WHERE id % 3 = 0")
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        left = store.count_entries()
        assert store.warm() == left and len(store._search.hnsw or []) == left
        for t in texts[2::300]:  # entry ids are 1-based: texts[2] was id 3
            hits = store.search(t, mode="vector", limit=20)
            assert all(h.record.id % 3 for h in hits) and t not in [h.record.text for h in hits]
    # a different database moved into place keeps the old index file beside it
    other = tmp_path / "other.db"
    with EpisodicStore(StoreConfig(url=_url(other), embedder="hash", vector_search="hnsw")) as store:
        _fill(store, _texts(N, seed=5))
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    other.rename(db)
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        q = _texts(N, seed=5)[1234]
        assert store.search(q, mode="vector")[0].record.text == q  # rebuilt, not the stale graph


def test_corrupt_index_file_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "c.db"
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        _fill(store, _texts(1000))
        store.warm()
    index_file = Path(str(db) + ".hnsw")
    index_file.write_bytes(index_file.read_bytes()[:5000])  # truncated, e.g. a full disk
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        q = _texts(1000)[77]
        assert store.search(q, mode="vector")[0].record.text == q
        assert len(store._search.hnsw or []) == 1000
    assert HashEmbedder().dim == 384


def test_size_cap_keeps_index_and_table_in_step(tmp_path: Path) -> None:
    from taskmem_ros.store import StoreFullError

    db = tmp_path / "cap.db"
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        _fill(store, _texts(1000))
        store.warm()
    cap = db.stat().st_size / 2**20 + 1.0
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw", max_db_mb=cap)) as store:
        with pytest.raises(StoreFullError):
            for k in range(200):
                _fill(store, [f"overflow {k} entry {i} " + "z" * 400 for i in range(500)], start=10_000 + 500 * k)
                store.search("overflow", mode="vector")  # the index follows every committed batch
        n = store.count_entries()
        assert n % 500 == 0 and store.warm() == n  # the failed batch is in neither
        assert len(store._search.hnsw or []) == n
        q = _texts(1000)[10]
        assert store.search(q, mode="vector")[0].record.text == q


def _wait_for_index(store: EpisodicStore, deadline_s: float = 120.0) -> None:
    """Refresh until the background-prepared index is adopted (a deadline, not a sleep)."""
    deadline = time.monotonic() + deadline_s
    while store._search.hnsw is None:
        assert time.monotonic() < deadline, "the background HNSW preparation never finished"
        store.warm()
        if store._search._worker is not None:
            store._search._worker.join(0.05)


def test_large_index_is_prepared_in_the_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskmem_ros.store import search

    monkeypatch.setattr(search, "BACKGROUND_MIN", 1000)  # the 1M case, scaled down
    db = tmp_path / "bg.db"
    texts = _texts(N)
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        _fill(store, texts)
        assert store.warm() == N and store._search.hnsw is None  # building, not blocking the caller
        assert store.search(texts[42], mode="vector")[0].record.text == texts[42]  # the LSH tier answers
        _wait_for_index(store)
        _fill(store, ["late forklift by the dock"] * 10, start=N)  # added while it was being built: caught up
        assert store.warm() == N + 10 and len(store._search.hnsw or []) == N + 10
        assert store.search(texts[7], mode="vector")[0].record.text == texts[7]
    index_file = Path(str(db) + ".hnsw")
    assert index_file.is_file()
    # reopened: the saved file is loaded in the background and checked against the table
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM embeddings WHERE entry_id > ?", (N,))
        conn.execute("DELETE FROM memory_entries WHERE id > ?", (N,))
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        store.warm(wait=True)  # waits for the background load and adopts it
        hnsw = store._search.hnsw
        assert hnsw is not None and len(hnsw) == N and hnsw.unsaved == 10  # loaded; the 10 gone rows marked deleted
        assert store.search(texts[99], mode="vector")[0].record.text == texts[99]
    # closing while a build runs cancels it cleanly
    index_file.unlink()
    with EpisodicStore(StoreConfig(url=_url(db), embedder="hash", vector_search="hnsw")) as store:
        store.warm()
        assert store._search._worker is not None
    assert store._search._worker is None

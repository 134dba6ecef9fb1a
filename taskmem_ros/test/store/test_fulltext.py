"""SQLite full text through tantivy: exact bm25 ranking, exact filters, index lifecycle, kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest
from store_helpers import drafts, python_child

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, lexical
from taskmem_ros.store.forget import ForgetSelector
from taskmem_ros.types import NS_PER_S

SYL = ["ka", "ri", "to", "mu", "se", "la", "no", "pe", "zu", "vi", "do", "ge"]
WORDS = [a + b for a in SYL for b in ["ran", "ton", "mel", "dis", "cor", "bak", "fin"]]


def corpus(n: int, seed: int = 3) -> list[str]:
    """Zipf-distributed words (a few common, most rare), 4-12 per entry."""
    r = np.random.default_rng(seed)
    return [
        " ".join(WORDS[int(min(r.zipf(1.3), len(WORDS))) - 1] for _ in range(int(r.integers(4, 12)))) for _ in range(n)
    ]


def exact(store: EpisodicStore, query: str, k: int, where: str = "", args: tuple = ()) -> dict[int, float]:
    """FTS5's own bm25 (id -> -rank) over every match (the reference the issue measures against)."""
    sql = (
        "SELECT f.rowid, f.rank FROM memory_fts f JOIN memory_entries e ON e.id = f.rowid WHERE memory_fts MATCH ? "
        f"{where} ORDER BY rank LIMIT ?"
    )
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(sql, (lexical.any_of(lexical.query_terms(query)), *args, k)).all()
    return {int(r[0]): -float(r[1]) for r in rows}


def agreement(got: list[int], ref: dict[int, float], everything: dict[int, float]) -> float:
    """Share of our top-k that is in the exact top-k, counting a tie with the exact k-th score."""
    if not ref:
        return 1.0 if not got else 0.0
    kth = min(ref.values())
    return sum(i in ref or everything.get(i, -1e9) >= kth - 1e-9 for i in got) / len(ref)


def _url(tmp_path: Path, name: str = "ft.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def _open(url: str, **kw: object) -> EpisodicStore:
    return EpisodicStore(StoreConfig(url=url, embedder="hash"), **kw).open()  # type: ignore[arg-type]


def test_ranking_and_filters_match_exact_fts5_bm25(tmp_path: Path) -> None:
    texts = corpus(3000)
    with _open(_url(tmp_path)) as store:
        store.add_entries("a", drafts(texts[:1500]))
        store.add_entries("b", drafts(texts[1500:]))
        r = np.random.default_rng(0)
        overlap = []
        for _ in range(40):
            q = " ".join(r.choice(WORDS, size=3, replace=False))
            got = [x.record.id for x in store.search(q, mode="fts", limit=10)]
            overlap.append(agreement(got, exact(store, q, 10), exact(store, q, 10_000)))
            as_of = int(r.integers(100, 15000)) * NS_PER_S
            got_f = store.search(q, mode="fts", limit=10, as_of_ns=as_of, stream="b")
            assert all(x.record.end_ns <= as_of and x.record.stream == "b" for x in got_f)
            sid = store.ensure_stream("b")
            where = "AND e.end_ns <= ? AND e.stream_id = ?"
            ref_f, all_f = (exact(store, q, k, where, (as_of, sid)) for k in (10, 10_000))
            overlap.append(agreement([x.record.id for x in got_f], ref_f, all_f))
            lo, hi = sorted(int(v) for v in r.integers(0, 15000, size=2) * NS_PER_S)
            got_w = store.search(q, mode="fts", limit=10, start_ns=lo, end_ns=hi)
            assert all(x.record.end_ns >= lo and x.record.start_ns <= hi for x in got_w)
        # tantivy's idf is never negative where FTS5 clamps terms in > half the entries to ~0, so a
        # rare common-word query can differ in its last places; the bar is 0.95
        assert np.mean(overlap) >= 0.95, overlap


def test_index_lives_beside_the_file_and_is_rebuilt_on_mismatch(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with _open(url) as store:
        ids = [r.id for r in store.add_entries("a", drafts(["the kettle is on the stove", "the keys are in the bowl"]))]
        assert store.search("kettle", mode="fts")[0].record.id == ids[0]
    index_dir = tmp_path / "ft.db.tantivy"
    assert (index_dir / "taskmem.json").is_file()
    # another database file under the same name: its index must not answer for it
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp_path / "ft.db") + suffix).unlink(missing_ok=True)
    with _open(url) as store:
        other = store.add_entries("a", drafts(["a bicycle in the hallway"]))
        assert [r.record.id for r in store.search("bicycle", mode="fts")] == [other[0].id]
        assert store.search("kettle", mode="fts") == []
    # a deleted or damaged index is rebuilt from the rows
    shutil.rmtree(index_dir)
    with _open(url) as store:
        assert [r.record.text for r in store.search("bicycle", mode="fts")] == ["a bicycle in the hallway"]
    (index_dir / "taskmem.json").write_text("{not json")
    with _open(url) as store:
        assert [r.record.text for r in store.search("bicycle hallway", mode="fts")] == ["a bicycle in the hallway"]


def test_second_process_and_read_only_viewer_see_the_newest_entries(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with _open(url) as owner:
        owner.add_entries("a", drafts(["an umbrella by the door"]))
        assert owner.search("umbrella", mode="fts")  # owner holds tantivy's writer now
        with _open(url) as second:
            second.add_entries("a", drafts(["a green umbrella in the garage"], start_s=100))
            assert {r.record.text for r in second.search("umbrella", mode="fts")} == {
                "an umbrella by the door",
                "a green umbrella in the garage",
            }
            viewer = _open(url, read_only=True)
            try:
                hits = viewer.search("green umbrella", mode="fts")
                assert hits[0].record.text == "a green umbrella in the garage"
                second.forget(ForgetSelector(text="green umbrella"), dry_run=False)
                assert [r.record.text for r in viewer.search("umbrella", mode="fts")] == ["an umbrella by the door"]
            finally:
                viewer.close()
        assert [r.record.text for r in owner.search("umbrella", mode="fts")] == ["an umbrella by the door"]


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.store.forget import ForgetSelector

    store = EpisodicStore(StoreConfig(url=sys.argv[1], embedder="hash")).open()
    assert store.search("alpha", mode="fts")  # the tantivy index holds every entry, committed
    print("go", flush=True)
    store.forget(ForgetSelector(text="alpha"), dry_run=False)
    if sys.argv[2] == "after-commit":
        os.kill(os.getpid(), signal.SIGKILL)  # before any index applied the tombstones
    """
)


@pytest.mark.parametrize("mode", ["after-commit", "mid-forget"])
def test_kill_9_during_forget_is_all_or_nothing_and_indexes_repair(tmp_path: Path, mode: str) -> None:
    url = _url(tmp_path)
    n = 5000 if mode == "mid-forget" else 200
    with _open(url) as store:
        for k in range(0, n, 1000):
            store.add_entries("a", drafts([f"alpha memory {i}" for i in range(k, min(n, k + 1000))]))
        store.add_entries("a", drafts(["beta memory stays"], start_s=10 * n + 10))
    proc = python_child(CHILD, url, mode)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "go", proc.stderr.read() if proc.stderr else ""
        if mode == "mid-forget":
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    with _open(url) as store:
        assert store.integrity_check() == "ok"
        left = store.count_entries()
        tombs = store.forgotten_uids()
        assert (left, len(tombs), len(store.forget_log())) in ((n + 1, 0, 0), (1, n, 1)), (left, len(tombs))
        if mode == "after-commit":
            assert left == 1
        for q_mode in ("fts", "vector", "hybrid"):
            found = store.search("alpha memory", mode=q_mode, limit=50)
            assert all(("alpha" in r.record.text) == (left > 1) for r in found if "alpha" in r.record.text)
            if left == 1:
                assert [r.record.text for r in found if "alpha" in r.record.text] == []
        ft = store._search.ft
        assert ft is not None and ft.num_docs() == left  # the index agrees with the table again

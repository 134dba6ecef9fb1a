"""Many robots, one memory: concurrent writer processes (one stream each), kill -9 of a writer
mid-batch, and per-robot / fleet-wide queries - on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from collections import Counter
from collections.abc import Callable

import pytest
from store_helpers import python_child

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import NS_PER_S

pytestmark = pytest.mark.backends("sqlite", "postgresql")

BATCH = 5
WRITER = textwrap.dedent(
    """
    import sys
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.types import NS_PER_S, MemoryDraft

    url, stream, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with EpisodicStore(StoreConfig(url=url, embedder="hash", busy_timeout_ms=30000)) as store:
        i = 0
        while batches < 0 or i < batches:
            text = "robot {s} saw the red cart in the loading bay" if i == 7 else "robot {s} batch {i} part {k}"
            batch = [
                MemoryDraft(text.format(s=stream, i=i, k=k), start_ns=i * NS_PER_S, end_ns=(i + 1) * NS_PER_S)
                for k in range({batch})
            ]
            recs = store.add_entries(stream, batch)
            print(" ".join(str(r.id) for r in recs), flush=True)
            i += 1
    """
).replace("{batch}", str(BATCH))


def _writer(url: str, stream: str, batches: int) -> subprocess.Popen[str]:
    return python_child(WRITER, url, stream, str(batches))


def test_concurrent_writers_lose_and_duplicate_nothing(store_url: Callable[[str], str]) -> None:
    url = store_url("fleet.db")
    with EpisodicStore(StoreConfig(url=url, embedder="hash")):
        pass  # schema created once, before the writers race
    robots, batches = [f"robot{n}" for n in range(4)], 40
    procs = [_writer(url, r, batches) for r in robots]
    acked: dict[str, list[int]] = {}
    for r, p in zip(robots, procs, strict=True):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        acked[r] = [int(i) for i in out.split()]
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        all_ids = [i for ids in acked.values() for i in ids]
        assert len(all_ids) == len(set(all_ids)) == len(robots) * batches * BATCH
        assert store.count_entries() == len(all_ids)
        for r in robots:
            assert store.count_entries(r) == batches * BATCH
            recs = store.get_entries(acked[r])
            assert {x.stream for x in recs} == {r} and len(recs) == batches * BATCH
            texts = Counter(x.text for x in store.timeline(r))
            assert texts.pop(f"robot {r} saw the red cart in the loading bay") == BATCH
            assert set(texts.values()) == {1} and len(texts) == (batches - 1) * BATCH  # each written once
        # which robot saw the red cart, and when: one hit per robot, with its time window
        for mode in ("fts", "vector", "hybrid"):
            hits = store.search("who saw the red cart in the loading bay", limit=40, mode=mode)
            carts = {h.record.stream: h.record.start_ns for h in hits if "red cart" in h.record.text}
            assert carts == {r: 7 * NS_PER_S for r in robots}, mode
            mine = store.search("red cart loading bay", stream="robot2", mode=mode)
            assert mine and {h.record.stream for h in mine} == {"robot2"}
            assert "red cart" in mine[0].record.text


def test_kill_9_mid_batch_keeps_whole_batches_only(store_url: Callable[[str], str]) -> None:
    url = store_url("killed.db")
    proc = _writer(url, "robot", -1)
    acked: list[list[int]] = []
    deadline = time.monotonic() + 120
    try:
        assert proc.stdout is not None
        while len(acked) < 60 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append([int(i) for i in line.split()])
        os.kill(proc.pid, signal.SIGKILL)  # the writer is mid-way through its next batch
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 60, f"writer acknowledged only {len(acked)} batches: {err[-2000:]}"
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        flat = [i for b in acked for i in b]
        assert {r.id for r in store.get_entries(flat)} == set(flat)  # every acknowledged commit is there
        per_batch = Counter(r.start_ns for r in store.timeline("robot"))
        assert set(per_batch.values()) == {BATCH}  # and no batch is there in part
        assert len(per_batch) in (len(acked), len(acked) + 1)  # at most the in-flight one committed unseen
        assert store.search("robot batch 3 part 2", mode="fts")  # the indexes survived with the rows
        assert (
            store.search("red cart", mode="vector")[0].record.text == "robot robot saw the red cart in the loading bay"
        )

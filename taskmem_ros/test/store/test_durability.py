"""Every commit acknowledged before a SIGKILL is still there afterwards (WAL + NORMAL)."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

from store_helpers import python_child

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore

WRITER = textwrap.dedent(
    """
    import sys
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.types import MemoryDraft

    with EpisodicStore(StoreConfig(url=sys.argv[1], embedder="hash")) as store:
        i = 0
        while True:
            batch = [MemoryDraft(f"memory {i} part {k}", start_ns=i, end_ns=i + 1) for k in range(5)]
            for rec in store.add_entries("robot", batch):
                print(rec.id)
            sys.stdout.flush()
            i += 1
    """
)


def test_sigkill_mid_stream_loses_no_acknowledged_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    proc = python_child(WRITER, url)
    acked: list[int] = []
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while len(acked) < 400 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the writer is still committing
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 400, f"writer produced only {len(acked)} ids: {err[-2000:]}"
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        assert store.integrity_check() == "ok"
        found = {r.id for r in store.get_entries(acked)}
        assert found == set(acked)
        assert store.count_entries() >= len(acked)
        assert store.search("memory 3 part 2", mode="fts")  # indexes survived with the rows

"""`/memorizer/forget_memory`: preview, apply, hostile requests refused, over the real ROS graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import MemoryDraft

pytestmark = pytest.mark.ros


def test_forget_memory_service(tmp_path: Path) -> None:
    from graph_client import GraphClient, node_process, stop_processes

    url = f"sqlite:///{tmp_path / 'm.db'}"
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        texts = ("the blue cabinet holds the keys", "a red mug on the table", "the blue cabinet squeaks")
        store.add_entries("robot", [MemoryDraft(t, start_ns=i, end_ns=i + 1) for i, t in enumerate(texts)])
    proc = node_process("memorizer_node", "autostart:=true", f"store.url:={url}", "store.embedder:=hash")
    client = GraphClient("forget_probe")
    try:
        client.wait_active(["memorizer"], [proc])
        for hostile in ({"text": "   "}, {}, {"text": "the of"}, {"kind": "all"}):
            resp = client.forget(dry_run=False, **hostile)
            assert not resp.success and resp.count == 0, hostile
        resp = client.forget(text="blue cabinet", dry_run=True)
        assert resp.success and resp.count == 2 and {e.text for e in resp.preview} == {texts[0], texts[2]}
        resp = client.forget(text="blue cabinet", dry_run=False, requested_by="alice")
        assert resp.success and resp.count == 2 and not resp.preview
    finally:
        client.close()
        codes = stop_processes([proc])
    assert codes == [0]
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        assert [r.text for r in store.timeline()] == [texts[1]]
        (entry,) = store.forget_log()
        assert entry.requested_by == "alice" and "blue" not in str(entry.selector)
        assert store.search("blue cabinet", mode="fts") == []

"""task_node over a fleet store: QueryMemory / AnswerTask across every stream or one robot's."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import NS_PER_S, MemoryDraft

pytestmark = pytest.mark.ros


def test_stream_filter_on_query_and_answer(tmp_path: Path) -> None:
    from graph_client import GraphClient, node_process, stop_processes

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        store.add_entries("robot-a", [MemoryDraft("The red cart is in the loading bay", start_ns=0, end_ns=NS_PER_S)])
        store.add_entries("robot-b", [MemoryDraft("The red cart is next to dock 4", start_ns=0, end_ns=2 * NS_PER_S)])
        store.add_entries("robot-b", [MemoryDraft("A blue crate fell over", start_ns=0, end_ns=3 * NS_PER_S)])
    proc = node_process("task_node", "autostart:=true", f"store.url:={url}", "store.embedder:=hash")
    client = GraphClient("fleet_probe")
    try:
        client.wait_active(["task_server"], [proc])
        every = client.query("where is the red cart", as_of_ns=10 * NS_PER_S, mode="fts")
        assert every.success and {e.stream for e in every.entries} == {"robot-a", "robot-b"}
        only_b = client.query("where is the red cart", as_of_ns=10 * NS_PER_S, mode="fts", stream="robot-b")
        assert only_b.success and [e.text for e in only_b.entries] == ["The red cart is next to dock 4"]
        timeline_a = client.query("", as_of_ns=10 * NS_PER_S, stream="robot-a")
        assert [e.stream for e in timeline_a.entries] == ["robot-a"]
        assert not client.query("red cart", as_of_ns=10 * NS_PER_S, stream="robot-z").entries
        result = client.answer("Where is the red cart?", asked_at_ns=10 * NS_PER_S, stream="robot-a")
        assert not result.abstained
        assert {e.stream for e in result.evidence} == {"robot-a"}
        result = client.answer("Where is the red cart?", asked_at_ns=10 * NS_PER_S, stream="robot-z")
        assert result.abstained and not result.evidence_ids  # nothing of that robot's: abstain
    finally:
        client.close()
        codes = stop_processes([proc])
    assert codes == [0]

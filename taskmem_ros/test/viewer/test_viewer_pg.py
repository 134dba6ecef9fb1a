"""The viewer over a fleet store on a real PostgreSQL (the same pages and answerer as on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the 'viewer' extra is not installed")
from fastapi.testclient import TestClient
from pg_server import database_url, drop_database

from taskmem_ros.config import StoreConfig, TaskMemConfig, ViewerConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import MemoryDraft
from taskmem_ros.viewer.app import create_app

S = 1_000_000_000
FACTS = {"robot1": "The red cart is by dock 7.", "robot2": "Someone left a <script>alert(1)</script> note."}


@pytest.fixture
def fleet_url(pg_server: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    url = database_url(pg_server, request.node.nodeid, "fleet", create=True)
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        for i, (stream, fact) in enumerate(FACTS.items()):
            cid = store.add_clip(stream, 0, i * 10 * S, (i + 1) * 10 * S, transcript=fact, run="boot-1")
            draft = MemoryDraft(text=fact, start_ns=i * 10 * S, end_ns=(i + 1) * 10 * S, source="speech")
            store.add_entries(stream, [draft], clip_id=cid, model_id="perception")
        store.log_task("Which robot saw the red cart?", asked_at_ns=30 * S, answer="robot1", stream="robot1")
    yield url
    drop_database(pg_server, request.node.nodeid, "fleet")


def test_viewer_reads_a_postgresql_fleet_store(fleet_url: str) -> None:
    cfg = TaskMemConfig(store=StoreConfig(url=fleet_url, embedder="hash"))
    with TestClient(create_app(cfg, ViewerConfig()), base_url="http://127.0.0.1") as client:
        page = client.get("/timeline?stream=robot1")
        assert page.status_code == 200 and FACTS["robot1"] in page.text
        hostile = client.get("/timeline?stream=robot2").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile and "<script>alert" not in hostile
        assert "Which robot saw the red cart?" in client.get("/tasks").text
        ask = client.get("/ask?q=Where+is+the+red+cart%3F&stream=robot1")
        assert ask.status_code == 200 and "red cart" in ask.text
    with EpisodicStore(StoreConfig(url=fleet_url, embedder="hash")) as store:  # read-only: nothing was written
        assert len(store.timeline()) == 2 and len(store.tasks()) == 1

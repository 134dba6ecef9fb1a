"""A robot's offline SQLite memory synced into a fleet store: complete, and idempotent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from store_helpers import drafts

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.store.sync import sync_stores
from taskmem_ros.types import NS_PER_S, Answer

pytestmark = pytest.mark.backends("sqlite", "postgresql")


def _robot(path: Path, stream: str, texts: list[str]) -> EpisodicStore:
    store = EpisodicStore(StoreConfig(url=f"sqlite:///{path}", embedder="hash")).open()
    clip = store.add_clip(stream, 0, 0, 100 * NS_PER_S, keyframes=3, transcript="beep", run="boot-1")
    recs = store.add_entries(stream, drafts(texts), clip_id=clip, model_id="m", adapter_id="lora-a")
    store.log_task(
        "where is the red cart?",
        asked_at_ns=200 * NS_PER_S,
        answer=Answer("loading bay", False, evidence_ids=[recs[0].id], confidence=0.8),
        stream=stream,
        outcome=True,
    )
    store.register_adapter("lora-a", kind="policy", base_model="qwen", sha256="ab", active=True)
    return store


def test_sync_copies_everything_once(tmp_path: Path, make_store: Callable[..., EpisodicStore]) -> None:
    fleet = make_store("fleet.db")
    fleet.add_entries("robot-b", drafts(["robot b was here first"]))  # ids in the fleet differ from the robot's
    texts = [f"crate {i} stacked near dock {i % 7}" for i in range(30)] + ["the red cart is in the loading bay"]
    robot = _robot(tmp_path / "robot-a.db", "robot-a", texts)
    try:
        seen: list[tuple[str, int, int]] = []
        report = sync_stores(robot, fleet, batch=8, progress=lambda *a: seen.append(a))
        assert (report.entries_added, report.entries_present, report.clips) == (31, 0, 1)
        assert (report.tasks_added, report.adapters_added) == (1, 1)
        assert seen[-1][0] == "tasks" and ("entries", 31, 31) in seen  # progress reached the end
        (clip,) = fleet.clips("robot-a")
        assert (clip["run"], clip["run_clip_index"], clip["transcript"]) == ("boot-1", 0, "beep")
        again = sync_stores(robot, fleet, batch=8)
        assert (again.entries_added, again.entries_present, again.tasks_added, again.adapters_added) == (0, 31, 0, 0)
        assert fleet.count_entries("robot-a") == 31 and fleet.count_entries() == 32

        src = {r.text: r for r in robot.timeline("robot-a")}
        dst = {r.text: r for r in fleet.timeline("robot-a")}
        assert src.keys() == dst.keys()
        for text, a in src.items():
            b = dst[text]
            assert (a.start_ns, a.end_ns, a.model_id, a.adapter_id, a.created_ns) == (
                b.start_ns,
                b.end_ns,
                b.model_id,
                b.adapter_id,
                b.created_ns,
            )
            assert b.clip_id is not None
        ids = [r.id for r in src.values()]
        np.testing.assert_allclose(fleet.vectors([dst[t].id for t in src]), robot.vectors(ids), atol=1e-6)

        (task,) = fleet.tasks(stream="robot-a")
        assert task.outcome == "correct" and task.evidence_ids == [dst[texts[0]].id]  # rewritten to fleet ids
        adapter = fleet.active_adapter("policy")
        assert adapter is not None and adapter.adapter_id == "lora-a"

        hits = fleet.search("who saw the red cart", limit=3)
        assert hits[0].record.text == texts[-1] and hits[0].record.stream == "robot-a"

        robot.add_entries("robot-a", drafts(["a new crate arrived"], start_s=900))  # later, offline again
        assert sync_stores(robot, fleet).entries_added == 1
        assert fleet.count_entries("robot-a") == 32
    finally:
        robot.close()


def test_sync_refuses_other_embedder(tmp_path: Path, make_store: Callable[..., EpisodicStore]) -> None:
    fleet = make_store("fleet.db")
    robot = EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'r.db'}", embedder="hash", embedding_dim=64))
    with robot:
        robot.add_entries("robot", drafts(["x"]))
        with pytest.raises(StoreError, match="embedder"):
            sync_stores(robot, fleet)
    assert fleet.count_entries() == 0

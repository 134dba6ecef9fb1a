"""Writing and reading memory, clips, tasks and adapters on a real SQLite file."""

from __future__ import annotations

import pytest
from store_helpers import drafts

from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.types import NS_PER_S, Answer, MemoryDraft


def test_add_entries_round_trip(store: EpisodicStore) -> None:
    clip = store.add_clip("robot", 0, 0, 10 * NS_PER_S, keyframes=10, transcript="hello")
    batch = [
        MemoryDraft("The red mug is on the shelf.", "episodic", 1, 5, "ocr", 0.9),
        MemoryDraft("   "),  # dropped
        MemoryDraft("Alice likes tea.", "semantic", 2, 8, "asr", 0.5),
        MemoryDraft(""),  # dropped
    ]
    recs = store.add_entries("robot", batch, clip_id=clip, model_id="m1", adapter_id="a1")
    assert [r.text for r in recs] == ["The red mug is on the shelf.", "Alice likes tea."]
    assert recs[0].id < recs[1].id
    back = store.get_entries([recs[1].id, 999_999, recs[0].id])
    assert back == [recs[1], recs[0]]
    r = back[1]
    assert (r.stream, r.kind, r.start_ns, r.end_ns, r.source, r.model_id, r.adapter_id, r.clip_id) == (
        "robot",
        "episodic",
        1,
        5,
        "ocr",
        "m1",
        "a1",
        clip,
    )
    assert r.confidence == pytest.approx(0.9)
    assert store.count_entries() == 2 and store.count_entries("robot") == 2 and store.count_entries("nope") == 0
    v = store.vectors([recs[0].id])
    assert v.shape == (1, 384) and abs(float((v[0] ** 2).sum()) - 1.0) < 1e-5


def test_all_empty_batch_commits_nothing(store: EpisodicStore) -> None:
    assert store.add_entries("robot", [MemoryDraft(" \n\t")]) == []
    assert store.count_entries() == 0


def test_invalid_drafts_are_rejected_before_writing(store: EpisodicStore) -> None:
    with pytest.raises(ValueError, match="before start_ns"):
        store.add_entries("robot", [MemoryDraft("ok", start_ns=0, end_ns=1), MemoryDraft("bad", start_ns=5, end_ns=1)])
    with pytest.raises(ValueError, match="kind"):
        store.add_entries("robot", [MemoryDraft("x", kind="dream")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stream"):
        store.add_entries("", [MemoryDraft("x")])
    assert store.count_entries() == 0


def test_clip_upsert_on_replay(store: EpisodicStore) -> None:
    a = store.add_clip("robot", 3, 0, 10)
    b = store.add_clip("robot", 3, 0, 12, keyframes=4)
    c = store.add_clip("other", 3, 0, 10)
    assert a == b and c != a


def test_timeline_recent_and_filters(store: EpisodicStore) -> None:
    store.add_entries("robot", drafts([f"event {i}" for i in range(6)]))  # windows [0,10], [10,20], ...
    store.add_entries("other", drafts(["elsewhere"], start_s=5))
    tl = store.timeline("robot")
    assert [r.text for r in tl] == [f"event {i}" for i in range(6)]
    assert [r.text for r in store.timeline("robot", as_of_ns=30 * NS_PER_S)] == ["event 0", "event 1", "event 2"]
    assert [r.text for r in store.timeline("robot", limit=2, newest_first=True)] == ["event 5", "event 4"]
    window = store.timeline("robot", start_ns=25 * NS_PER_S, end_ns=35 * NS_PER_S)
    assert [r.text for r in window] == ["event 2", "event 3"]  # overlap, not containment
    assert len(store.timeline()) == 7 and store.timeline("missing") == []
    recent = store.recent("robot", 2, as_of_ns=40 * NS_PER_S)
    assert [r.text for r in recent] == ["event 2", "event 3"]  # latest two, oldest first


def test_tasks_log_and_outcome(store: EpisodicStore) -> None:
    ans = Answer("kitchen", False, evidence_ids=[1, 2], confidence=0.7, choice_index=0, latency_s=0.01)
    t1 = store.log_task("Where is the mug?", asked_at_ns=5, answer=ans, choices=["kitchen", "garage"], stream="robot")
    t2 = store.log_task(
        question="Who came?",
        asked_at_ns=9,
        answer="Insufficient information in memory.",
        abstained=True,
        evidence_ids=[],
        latency_s=0.2,
        stream="robot",
        is_eval=True,
    )
    store.update_task_outcome(t1, True)
    store.update_task_outcome(t2, "skipped")
    rows = store.tasks()
    assert [r.id for r in rows] == [t1, t2]
    assert rows[0].choices == ["kitchen", "garage"] and rows[0].evidence_ids == [1, 2] and rows[0].outcome == "correct"
    assert rows[0].choice_index == 0 and rows[0].confidence == pytest.approx(0.7) and rows[0].stream == "robot"
    assert rows[1].abstained and rows[1].is_eval and rows[1].outcome == "skipped"
    assert [r.id for r in store.tasks(is_eval=True)] == [t2]
    with pytest.raises(StoreError, match="no task"):
        store.update_task_outcome(12345, "correct")
    with pytest.raises(ValueError, match="outcome"):
        store.update_task_outcome(t1, "")


def test_adapters_one_active_per_kind(store: EpisodicStore) -> None:
    store.register_adapter("lora-1", kind="policy", base_model="qwen3-vl", path="/a/1", sha256="ab", active=True)
    store.register_adapter("lora-2", kind="policy", base_model="qwen3-vl", metrics={"acc": 0.5}, active=True)
    store.register_adapter("ans-1", kind="answer", active=True)
    active = store.active_adapter("policy")
    assert active is not None and active.adapter_id == "lora-2" and active.metrics == {"acc": 0.5}
    store.set_active_adapter("lora-1")
    assert store.active_adapter("policy").adapter_id == "lora-1"  # type: ignore[union-attr]
    assert store.active_adapter("answer").adapter_id == "ans-1"  # type: ignore[union-attr]
    assert [a.adapter_id for a in store.adapters("policy")] == ["lora-1", "lora-2"]
    with pytest.raises(StoreError):
        store.set_active_adapter("missing")


def test_stats_and_closed_store(store: EpisodicStore) -> None:
    store.add_entries("robot", drafts(["one", "two"]))
    st = store.stats()
    assert st["entries"] == 2 and st["streams"] == 1 and st["db_bytes"] > 0 and st["sqlite_vec"] and st["fts5"]
    store.close()
    with pytest.raises(StoreError, match="not open"):
        store.count_entries()

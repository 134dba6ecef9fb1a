"""Writing and reading memory, clips, tasks and adapters on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import drafts

from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.types import NS_PER_S, Answer, MemoryDraft

pytestmark = pytest.mark.backends("sqlite", "postgresql")


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


def test_clip_identity_is_stream_run_index(store: EpisodicStore) -> None:
    a = store.add_clip("robot", 3, 0, 10, run="boot-1")
    b = store.add_clip("robot", 3, 0, 12, keyframes=4, run="boot-1")  # the same clip written again
    c = store.add_clip("other", 3, 0, 10, run="boot-1")
    d = store.add_clip("robot", 3, 100, 110, transcript="later", run="boot-2")  # a reboot counts from 0 again
    assert a == b and len({a, c, d}) == 3
    rows = {r["id"]: r for r in store.clips()}
    assert (rows[a]["end_ns"], rows[a]["keyframes"], rows[a]["run"]) == (12, 4, "boot-1")
    assert (rows[d]["start_ns"], rows[d]["transcript"], rows[d]["run_clip_index"]) == (100, "later", 3)
    assert [r["clip_index"] for r in store.clips("robot")] == [0, 1]  # the store's own ordinal


def test_stores_from_before_clip_runs_keep_their_rows(tmp_path: Path) -> None:
    """Migration 0003 adds the run columns without rebuilding ``clips``: old rows, and the
    entries pointing at them, are kept as they were (run '' = written before runs existed)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store.engine import create_store_engine
    from taskmem_ros.store.episodic_store import _MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    se = create_store_engine(StoreConfig(url=url, embedder="hash"))
    acfg = AlembicConfig()
    acfg.set_main_option("script_location", str(_MIGRATIONS))
    acfg.attributes["has_vec"] = se.has_vec
    with se.engine.begin() as conn:
        acfg.attributes["connection"] = conn
        command.upgrade(acfg, "0002")
        conn.exec_driver_sql("INSERT INTO streams (id, name, created_ns) VALUES (1, 'robot', 0)")
        conn.exec_driver_sql(
            "INSERT INTO clips (id, stream_id, clip_index, start_ns, end_ns, keyframes, transcript) "
            "VALUES (7, 1, 0, 0, 10, 3, 'old words')"
        )
        conn.exec_driver_sql(
            "INSERT INTO memory_entries (id, stream_id, clip_id, kind, text, start_ns, end_ns, source, model_id, "
            "adapter_id, confidence, created_ns) VALUES (1, 1, 7, 'episodic', 'old memory', 0, 10, '', '', '', 1, 0)"
        )
    se.engine.dispose()
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        assert store.clips() == [
            {"id": 7, "stream": "robot", "clip_index": 0, "run": "", "run_clip_index": 0, "start_ns": 0,
             "end_ns": 10, "keyframes": 3, "transcript": "old words"}
        ]  # fmt: skip
        assert [(r.text, r.clip_id) for r in store.timeline()] == [("old memory", 7)]
        new = store.add_clip("robot", 0, 20, 30, run="boot-1")  # a new run after the upgrade appends
        assert new != 7 and [c["clip_index"] for c in store.clips()] == [0, 1]


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


def test_stats_and_closed_store(store: EpisodicStore, backend: str) -> None:
    store.add_entries("robot", drafts(["one", "two"]))
    st = store.stats()
    assert st["entries"] == 2 and st["streams"] == 1 and st["backend"] == backend
    if backend == "sqlite":
        assert st["db_bytes"] > 0 and st["sqlite_vec"] and st["fts5"]
    else:
        assert st["vector_search"] == "pgvector" and st["indexed"] == 2
    store.close()
    with pytest.raises(StoreError, match="not open"):
        store.count_entries()

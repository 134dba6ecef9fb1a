"""Forgetting: selectors, preview, every search mode, restart, sync, clips, retention, hostile input."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from store_helpers import drafts, python_child

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.store.clip_archive import ClipArchive
from taskmem_ros.store.forget import ForgetSelector
from taskmem_ros.store.sync import _uids as uids_of
from taskmem_ros.store.sync import sync_stores
from taskmem_ros.types import NS_PER_S, Clip, MemoryDraft, VideoFrame

pytestmark = pytest.mark.backends("sqlite", "postgresql")

TEXTS = [
    "The blue cabinet in the kitchen holds the spare keys",
    "Alice put a red mug on the blue cabinet",
    "Bob watered the plant beside the window",
    "The charger is in the top drawer of the desk",
    "A sign on the door reads staff only",
    "The blue cabinet squeaks when it opens",
]
MODES = ("fts", "vector", "hybrid")


def _ids(store: EpisodicStore, query: str, mode: str, **kw: object) -> set[int]:
    return {r.record.id for r in store.search(query, mode=mode, limit=50, **kw)}


def test_text_forget_previews_then_removes_from_every_mode_and_restart(
    make_store: Callable[..., EpisodicStore],
) -> None:
    store = make_store()
    recs = store.add_entries("robot", drafts(TEXTS))
    cabinet = {r.id for r in recs if "blue cabinet" in r.text.lower()}
    assert len(cabinet) == 3
    for mode in MODES:
        assert cabinet & _ids(store, "blue cabinet", mode), mode  # findable before

    sel = ForgetSelector(text="the Blue Cabinet")  # "forget everything about the blue cabinet"
    preview = store.forget(sel, dry_run=True)
    assert preview.dry_run and set(preview.ids) == cabinet and preview.entries == 3
    assert {r.id for r in preview.preview} == cabinet
    assert store.count_entries() == len(TEXTS)  # a preview changes nothing
    assert store.forget_log() == []

    done = store.forget(sel, dry_run=False, requested_by="user:alice", reason="asked")
    assert not done.dry_run and set(done.ids) == cabinet and done.forget_id
    assert store.count_entries() == len(TEXTS) - 3

    def gone(s: EpisodicStore) -> None:
        for mode in MODES:
            for q in ("blue cabinet", "spare keys", "squeaks", "red mug"):
                assert not cabinet & _ids(s, q, mode), (mode, q)
        assert not cabinet & {r.id for r in s.timeline()}
        assert s.get_entries(sorted(cabinet)) == []
        assert not np.any(s.vectors(sorted(cabinet)))
        assert _ids(s, "charger drawer", "fts")  # the rest is still searchable

    gone(store)
    (entry,) = store.forget_log()
    assert entry.requested_by == "user:alice" and entry.entries == 3
    logged = json.dumps(entry.selector)
    assert "cabinet" not in logged.lower() and "text_sha256" in entry.selector
    url = store.cfg.url
    store.close()
    again = make_store(url.rsplit("/", 1)[-1]) if url.startswith("sqlite") else None
    if again is not None:
        gone(again)


def test_selectors_ids_stream_window_kind(make_store: Callable[..., EpisodicStore]) -> None:
    store = make_store()
    a = store.add_entries("a", drafts(["one apple", "two apples", "three apples"], start_s=0))
    b = store.add_entries("b", drafts(["four pears", "five pears"], start_s=0))
    sem = store.add_entries("a", [MemoryDraft("apples are fruit", start_ns=0, end_ns=1, kind="semantic")])
    assert store.forget(ForgetSelector(ids=(a[0].id, b[0].id)), dry_run=True).entries == 2
    assert store.forget(ForgetSelector(stream="b"), dry_run=True).ids == [r.id for r in b]
    assert store.forget(ForgetSelector(stream="nope"), dry_run=True).entries == 0
    window = ForgetSelector(stream="a", start_ns=12 * NS_PER_S, end_ns=18 * NS_PER_S)
    assert store.forget(window, dry_run=True).ids == [a[1].id]
    assert store.forget(ForgetSelector(kind="semantic"), dry_run=True).ids == [sem[0].id]
    assert store.forget(ForgetSelector(ids=(a[0].id,), stream="b"), dry_run=True).entries == 0  # AND
    res = store.forget(ForgetSelector(stream="b"), dry_run=False)
    assert res.entries == 2 and store.streams() == ["a", "b"] and store.count_entries("b") == 0
    for mode in MODES:
        assert not {r.id for r in b} & _ids(store, "four pears", mode)


def test_hostile_selectors_are_refused(store: EpisodicStore) -> None:
    store.add_entries("robot", drafts(TEXTS))
    for bad in ("", "   ", "the of and", "?!*", "\x00"):
        with pytest.raises(ValueError, match="everything"):
            ForgetSelector(text=bad)
    with pytest.raises(ValueError, match="needs"):
        ForgetSelector()
    with pytest.raises(TypeError):
        ForgetSelector(ids=("1",))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ForgetSelector(text=b"blue")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ForgetSelector(kind="everything")
    with pytest.raises(TypeError):
        store.forget({"text": "blue"})  # type: ignore[arg-type]
    # FTS / tsquery syntax is only ever literal words
    for text in ('blue" OR "kitchen', "blue NOT cabinet*", "'); DROP TABLE memory_entries; --", "NEAR(blue cabinet)"):
        res = store.forget(ForgetSelector(text=text), dry_run=False)
        assert res.entries <= 3
    assert store.count_entries() >= len(TEXTS) - 3
    assert store.forget(ForgetSelector(everything=True), dry_run=True).entries == store.count_entries()
    assert store.forget(ForgetSelector(everything=True), dry_run=False).entries > 0
    assert store.count_entries() == 0


def test_forget_deletes_clip_rows_and_archived_files(store: EpisodicStore, tmp_path: Path) -> None:
    archive = ClipArchive(tmp_path / "clips")
    frame = VideoFrame(5, np.zeros((4, 4, 3), np.uint8))
    kept_clip = Clip("robot", 0, 0, 10 * NS_PER_S, keyframes=[frame], run="r1")
    gone_clip = Clip("robot", 1, 10 * NS_PER_S, 20 * NS_PER_S, keyframes=[frame], run="r1")
    paths = [archive.save(c) for c in (kept_clip, gone_clip)]
    ids = [store.add_clip("robot", c.index, c.start_ns, c.end_ns, 1, "", run="r1") for c in (kept_clip, gone_clip)]
    store.add_entries("robot", drafts(["the kettle is on the stove"]), clip_id=ids[0])
    store.add_entries("robot", drafts(["the secret diary is under the bed"], start_s=10), clip_id=ids[1])
    pending = store.forget(ForgetSelector(text="secret diary"), dry_run=False)
    assert pending.clips == 1 and pending.files_pending == 1 and paths[1].exists()  # no archive given yet
    res = store.forget(ForgetSelector(text="nothing matches this"), dry_run=False, clips_dir=archive.root)
    assert res.files_deleted == 1 and res.files_pending == 0  # the earlier forget's file, finished now
    assert not paths[1].exists() and paths[0].exists()
    assert [c["id"] for c in store.clips()] == [ids[0]]
    assert store.forget_log()[0].pending_files == []


def test_forgotten_memories_do_not_come_back_through_sync(make_store: Callable[..., EpisodicStore]) -> None:
    robot, fleet = make_store("robot.db"), make_store("fleet.db")
    recs = robot.add_entries("robot", drafts(TEXTS))
    uid_of = uids_of(robot, [r.id for r in recs])
    sync_stores(robot, fleet)
    assert fleet.count_entries() == len(TEXTS)
    robot.forget(ForgetSelector(text="blue cabinet"), dry_run=False)
    rep = sync_stores(robot, fleet)
    assert rep.tombstones_added == 3 and fleet.count_entries() == len(TEXTS) - 3
    for mode in MODES:
        assert not any("cabinet" in r.record.text for r in fleet.search("blue cabinet", mode=mode, limit=50))
    # forgotten on the fleet side: a sync from a robot that still has it must not bring it back
    fleet.forget(ForgetSelector(text="charger drawer"), dry_run=False)
    other = make_store("other.db")
    other.import_entries(
        "robot",
        [
            {
                "uid": uid_of[r.id],
                "kind": "episodic",
                "text": r.text,
                "start_ns": r.start_ns,
                "end_ns": r.end_ns,
                "source": "",
                "model_id": "",
                "adapter_id": "",
                "confidence": 1.0,
                "created_ns": r.created_ns,
                "clip_id": None,
            }
            for r in recs
            if "charger" in r.text
        ],
        robot.vectors([r.id for r in recs if "charger" in r.text]),
    )
    assert other.count_entries() == 1
    rep = sync_stores(other, fleet)
    assert rep.entries_added == 0 and not _ids(fleet, "charger drawer", "fts")
    assert sync_stores(robot, fleet).tombstones_added == 0  # idempotent


def test_retention_days_and_per_kind_limits(make_store: Callable[..., EpisodicStore]) -> None:
    store = make_store(max_episodic_entries=2)
    store.add_entries("robot", drafts(["a cup", "a plate", "a bowl", "a fork"]))
    store.add_entries("robot", [MemoryDraft("cups hold tea", start_ns=0, end_ns=1, kind="semantic")])
    assert store.apply_retention() == 2
    assert sorted(r.text for r in store.timeline()) == ["a bowl", "a fork", "cups hold tea"]
    assert store.apply_retention() == 0 and len(store.forget_log()) == 1  # nothing due: no log row
    store.cfg.retention_days = 30
    assert store.apply_retention(now_ns=store.timeline()[0].created_ns + 29 * 86400 * NS_PER_S) == 0
    assert store.apply_retention(now_ns=store.timeline()[0].created_ns + 31 * 86400 * NS_PER_S) == 3
    assert store.count_entries() == 0


def test_forget_under_concurrent_writes_and_searches(store: EpisodicStore) -> None:
    store.add_entries("robot", drafts([f"secret plan number {i}" for i in range(50)]))
    stop = threading.Event()
    errors: list[BaseException] = []
    written: list[int] = []

    def writer() -> None:
        i = 0
        try:
            while not stop.is_set() and i < 400:
                kind = "secret plan" if i % 2 else "public note"
                written.extend(r.id for r in store.add_entries("robot", drafts([f"{kind} late {i}"], start_s=1000 + i)))
                i += 1
        except BaseException as exc:
            errors.append(exc)

    def searcher() -> None:
        try:
            while not stop.is_set():
                for mode in MODES:
                    store.search("secret plan", mode=mode, limit=20)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=searcher)]
    for t in threads:
        t.start()
    forgotten: set[int] = set()
    try:
        for _ in range(5):
            forgotten |= set(store.forget(ForgetSelector(text="secret plan"), dry_run=False).ids)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors
    forgotten |= set(store.forget(ForgetSelector(text="secret plan"), dry_run=False).ids)
    left = {r.id for r in store.timeline()}
    assert not forgotten & left
    assert all("public" in r.text for r in store.timeline())
    assert store.count_entries() == 50 + len(written) - len(forgotten)
    for mode in MODES:
        assert not forgotten & _ids(store, "secret plan", mode)


FORGETTER = textwrap.dedent(
    """
    import sys
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.store.forget import ForgetSelector

    store = EpisodicStore(StoreConfig(url=sys.argv[1], embedder="hash")).open()
    print("go", flush=True)
    store.forget(ForgetSelector(text="alpha"), dry_run=False)
    print("done", flush=True)
    """
)


def test_kill_9_mid_forget_is_all_or_nothing(store_url: Callable[[str], str]) -> None:
    """The forgetting process dies mid-transaction: on reopen either nothing or everything it
    selected is gone (rows, tombstones, the forget log and every search mode agree)."""
    url = store_url("forget-kill.db")
    n = 4000
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        for k in range(0, n, 1000):
            store.add_entries("a", drafts([f"alpha memory {i}" for i in range(k, k + 1000)]))
        store.add_entries("a", drafts(["beta memory stays"], start_s=10 * n + 10))
    proc = python_child(FORGETTER, url)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "go"
        os.kill(proc.pid, signal.SIGKILL)  # while it selects, deletes and writes tombstones
        proc.wait(timeout=60)
    finally:
        proc.kill()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    with EpisodicStore(StoreConfig(url=url, embedder="hash")) as store:
        assert store.integrity_check() == "ok"
        left, tombs, logged = store.count_entries(), len(store.forgotten_uids()), len(store.forget_log())
        assert (left, tombs, logged) in ((n + 1, 0, 0), (1, n, 1)), (left, tombs, logged, out)
        for mode in MODES:
            alpha = [r for r in store.search("alpha memory", mode=mode, limit=50) if "alpha" in r.record.text]
            assert bool(alpha) == (left > 1), mode
            assert store.search("beta memory stays", mode=mode)[0].record.text == "beta memory stays"
        store.forget(ForgetSelector(text="alpha"), dry_run=False)  # and forgetting again completes it
        assert store.count_entries() == 1
        for mode in MODES:
            assert not [r for r in store.search("alpha memory", mode=mode, limit=50) if "alpha" in r.record.text]

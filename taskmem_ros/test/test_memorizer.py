"""The core memory loop (no ROS): worker thread, back-pressure drops, failure isolation."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from taskmem_ros.config import IngestConfig, SegmenterConfig, StoreConfig, TaskMemConfig
from taskmem_ros.memorizer import Memorizer
from taskmem_ros.policy.base import MemorizationPolicy
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import NS_PER_S, Clip, MemoryDraft, PolicyContext, VideoFrame

T0 = 1_700_000_000 * NS_PER_S


class GatedPolicy(MemorizationPolicy):
    """A real policy implementation whose speed the test controls (a slow onboard model)."""

    model_id = "gated-test-policy"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.seen: list[int] = []
        self.contexts: list[PolicyContext] = []

    def memorize_batch(self, clips: Sequence[Clip], contexts: Sequence[PolicyContext]) -> list[list[MemoryDraft]]:
        self.gate.wait(30)
        self.seen += [c.index for c in clips]
        self.contexts += contexts
        if any(c.index == 1 for c in clips):
            raise RuntimeError("model crashed on this clip")
        return [[MemoryDraft(f"clip {c.index} memory", start_ns=c.start_ns, end_ns=c.end_ns)] for c in clips]


def _cfg(tmp_path: Path, drop_policy: str) -> TaskMemConfig:
    return TaskMemConfig(
        stream="test",
        store=StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}", embedder="hash"),  # no model: DB behaviour only
        segmenter=SegmenterConfig(clip_seconds=1.0, max_lateness_seconds=0.0, vad="none", asr="none"),
        ingest=IngestConfig(max_pending_clips=2, drop_policy=drop_policy),
    )


def _frames(n_seconds: int) -> list[VideoFrame]:
    return [VideoFrame(T0 + i * NS_PER_S // 2, np.zeros((8, 8, 3), np.uint8)) for i in range(2 * n_seconds)]


def test_slow_policy_drops_oldest_pending_clips_and_counts_them(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "drop_oldest")
    policy = GatedPolicy()
    with EpisodicStore(cfg.store) as store:
        mem = Memorizer(cfg, store, policy)
        mem.start()
        for f in _frames(8):  # 8 one-second clips while the policy is stuck on the first
            mem.push_frame(f)
        policy.gate.set()
        mem.stop(drain=True)
        stats = mem.all_stats()
        assert stats["clips_dropped_backlog"] > 0
        assert stats["clips_dropped_backlog"] + len(policy.seen) == stats["clips_out"]
        assert policy.seen[-1] == stats["clips_out"] - 1  # newest clip kept: the robot stays current
        assert stats["clips_failed"] == (1 in policy.seen)  # a crashing clip is counted, the loop goes on
        texts = [r.text for r in store.timeline()]
        assert texts == [f"clip {i} memory" for i in policy.seen if i != 1]


def test_drop_newest_keeps_history(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "drop_newest")
    policy = GatedPolicy()
    with EpisodicStore(cfg.store) as store:
        mem = Memorizer(cfg, store, policy)
        mem.start()
        for f in _frames(8):
            mem.push_frame(f)
        policy.gate.set()
        mem.stop(drain=True)
        assert policy.seen[:2] == [0, 1]  # oldest clips memorized, later ones dropped
        assert mem.all_stats()["clips_dropped_backlog"] > 0


def test_policy_gets_recent_memory_as_context(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "drop_oldest")
    policy = GatedPolicy()
    policy.gate.set()
    with EpisodicStore(cfg.store) as store:
        mem = Memorizer(cfg, store, policy)  # no worker: synchronous, nothing dropped
        for f in _frames(4):
            mem.push_frame(f)
        mem.flush()
        ctx = policy.contexts[-1]
        assert [r.text for r in ctx.recent_memories] == ["clip 0 memory", "clip 2 memory"]  # as of the clip start


class SlowPolicy(MemorizationPolicy):
    """A model that takes ``step_s`` per clip: a loaded machine, slower than any fixed deadline in total."""

    model_id = "slow-test-policy"
    batch_size = 1

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.never = threading.Event()

    def memorize_batch(self, clips: Sequence[Clip], contexts: Sequence[PolicyContext]) -> list[list[MemoryDraft]]:
        self.never.wait(self.step_s)  # the model's compute time
        return [[MemoryDraft(f"clip {c.index} memory", start_ns=c.start_ns, end_ns=c.end_ns)] for c in clips]


def test_flush_waits_while_the_worker_progresses_and_gives_up_only_on_a_stall(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "drop_newest")
    cfg.ingest = IngestConfig(max_pending_clips=100, drop_policy="drop_newest")
    with EpisodicStore(cfg.store) as store:
        # 10 clips at 0.3 s each: ~3 s to drain, longer than the 2 s the flush allows a stall.
        mem = Memorizer(cfg, store, SlowPolicy(0.3))
        mem.start()
        for f in _frames(10):
            mem.push_frame(f)
        assert mem.flush(timeout_s=2.0) is True  # a slow machine: a slow flush, not a failed one
        assert len(store.timeline()) == 10
        mem.stop(drain=True)

    cfg2 = _cfg(tmp_path / "stall", "drop_newest")
    (tmp_path / "stall").mkdir()
    policy = GatedPolicy()  # stuck until the gate opens: no progress at all
    with EpisodicStore(cfg2.store) as store:
        mem = Memorizer(cfg2, store, policy)
        mem.start()
        for f in _frames(2):
            mem.push_frame(f)
        assert mem.flush(timeout_s=0.3) is False  # a hung model ends the wait, no hang
        policy.gate.set()
        assert mem.flush(timeout_s=30) is True
        mem.stop(drain=True)

"""Clips kept for Phase Two survive the memorizer, round-trip exactly and are pruned oldest first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taskmem_ros.config import StoreConfig, TaskMemConfig, from_nested
from taskmem_ros.llm.tiny import synthetic_clip
from taskmem_ros.memorizer import Memorizer
from taskmem_ros.policy.factory import make_policy
from taskmem_ros.store import EpisodicStore
from taskmem_ros.store.clip_archive import ClipArchive


def test_round_trip_and_pruning(tmp_path: Path) -> None:
    archive = ClipArchive(tmp_path, max_clips=3)
    clips = [synthetic_clip(i, f"Fact number {i}.") for i in range(5)]
    for c in clips:
        archive.save(c)
    kept = archive.recent("robot", limit=10)
    assert [c.index for c in kept] == [2, 3, 4]  # the two oldest were pruned
    back = kept[-1]
    assert back.start_ns == clips[4].start_ns and back.end_ns == clips[4].end_ns
    assert [t.text for t in back.transcript] == ["Fact number 4."]
    assert all(
        np.array_equal(a.rgb, b.rgb) and a.stamp_ns == b.stamp_ns
        for a, b in zip(back.keyframes, clips[4].keyframes, strict=True)
    )
    assert [c.index for c in archive.recent("robot", limit=10, until_ns=clips[3].end_ns)] == [2, 3]


def test_unreadable_files_are_skipped(tmp_path: Path) -> None:
    archive = ClipArchive(tmp_path)
    archive.save(synthetic_clip(0))
    bad = archive.save(synthetic_clip(1))
    bad.write_bytes(b"not an npz")
    assert [c.index for c in archive.recent("robot")] == [0]


def test_memorizer_keeps_clips_when_configured(tmp_path: Path) -> None:
    cfg = from_nested(
        TaskMemConfig,
        {
            "store": {"url": f"sqlite:///{tmp_path / 'm.db'}", "embedder": "hash"},
            "segmenter": {"vad": "none", "asr": "none"},
            "policy": {"ocr": False, "faces": False},
            "ingest": {"keep_clips_dir": str(tmp_path / "kept")},
        },
    )
    with EpisodicStore(StoreConfig(url=cfg.store.url, embedder="hash")) as store:
        mem = Memorizer(cfg, store, make_policy(cfg))
        mem.submit([synthetic_clip(i) for i in range(2)])
        mem.process_pending()
    assert [c.index for c in ClipArchive(tmp_path / "kept").recent("robot")] == [0, 1]

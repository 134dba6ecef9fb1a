"""Fixtures: real SQLite files under tmp_path; the hash embedder unless a test needs MiniLM."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., EpisodicStore]]:
    opened: list[EpisodicStore] = []

    def factory(name: str = "mem.db", **overrides: Any) -> EpisodicStore:
        overrides.setdefault("embedder", "hash")
        store = EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / name}", **overrides)).open()
        opened.append(store)
        return store

    yield factory
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store: Callable[..., EpisodicStore]) -> EpisodicStore:
    return make_store()

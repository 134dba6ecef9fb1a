"""Initial schema: streams, clips, memory entries, embeddings, tasks, adapters;
on SQLite also the FTS5 index (external content, trigger-synced) and the vec0 code table.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Kept in sync by triggers, inside the writer's transaction, whoever inserts the row.
FTS_SQL = [
    """CREATE VIRTUAL TABLE memory_fts USING fts5(
        text, content='memory_entries', content_rowid='id', tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER memory_entries_fts_ai AFTER INSERT ON memory_entries BEGIN
        INSERT INTO memory_fts(rowid, text) VALUES (new.id, new.text); END""",
    """CREATE TRIGGER memory_entries_fts_ad AFTER DELETE ON memory_entries BEGIN
        INSERT INTO memory_fts(memory_fts, rowid, text) VALUES ('delete', old.id, old.text); END""",
    """CREATE TRIGGER memory_entries_fts_au AFTER UPDATE OF text ON memory_entries BEGIN
        INSERT INTO memory_fts(memory_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO memory_fts(rowid, text) VALUES (new.id, new.text); END""",
]

# 512-bit LSH codes (see store/vector_index.py) with the filter columns as vec0 metadata,
# one partition per stream. Written by the store in the same transaction as the entry.
VEC_SQL = """CREATE VIRTUAL TABLE vec_entries USING vec0(
    stream_id integer partition key, start_ns integer, end_ns integer, code bit[512])"""


def _has_vec(bind: sa.Connection) -> bool:
    known = op.get_context().config.attributes.get("has_vec") if op.get_context().config else None
    if known is not None:
        return bool(known)
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("SELECT vec_version()")
        return True
    except sa.exc.DBAPIError:
        return False


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_meta")),
    )
    op.create_table(
        "streams",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams")),
        sa.UniqueConstraint("name", name=op.f("uq_streams_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "clips",
        sa.Column("id", Id, nullable=False),
        sa.Column("stream_id", Id, nullable=False),
        sa.Column("clip_index", sa.BigInteger(), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_ns", sa.BigInteger(), nullable=False),
        sa.Column("keyframes", sa.Integer(), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.CheckConstraint("end_ns >= start_ns", name=op.f("ck_clips_time_order")),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name=op.f("fk_clips_stream_id_streams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clips")),
        sa.UniqueConstraint("stream_id", "clip_index", name=op.f("uq_clips_stream_id_clip_index")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "memory_entries",
        sa.Column("id", Id, nullable=False),
        sa.Column("stream_id", Id, nullable=False),
        sa.Column("clip_id", Id, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_ns", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("adapter_id", sa.String(255), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('episodic', 'semantic')", name=op.f("ck_memory_entries_kind")),
        sa.CheckConstraint("end_ns >= start_ns", name=op.f("ck_memory_entries_time_order")),
        sa.ForeignKeyConstraint(
            ["clip_id"], ["clips.id"], name=op.f("fk_memory_entries_clip_id_clips"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name=op.f("fk_memory_entries_stream_id_streams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memory_entries")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_memory_entries_stream_id_start_ns"), "memory_entries", ["stream_id", "start_ns"])
    op.create_index(op.f("ix_memory_entries_stream_id_end_ns"), "memory_entries", ["stream_id", "end_ns"])
    op.create_index(op.f("ix_memory_entries_end_ns"), "memory_entries", ["end_ns"])
    op.create_index(op.f("ix_memory_entries_start_ns"), "memory_entries", ["start_ns"])
    op.create_table(
        "embeddings",
        sa.Column("entry_id", Id, autoincrement=False, nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["memory_entries.id"],
            name=op.f("fk_embeddings_entry_id_memory_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_embeddings")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", Id, nullable=False),
        sa.Column("stream_id", Id, nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("asked_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("choice_index", sa.Integer(), nullable=True),
        sa.Column("abstained", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("evidence_ids", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("is_eval", sa.Boolean(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name=op.f("fk_tasks_stream_id_streams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_tasks_asked_at_ns"), "tasks", ["asked_at_ns"])
    op.create_table(
        "adapters",
        sa.Column("id", Id, nullable=False),
        sa.Column("adapter_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("base_model", sa.String(255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adapters")),
        sa.UniqueConstraint("adapter_id", name=op.f("uq_adapters_adapter_id")),
        sqlite_autoincrement=True,
    )

    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return  # PostgreSQL: see the store package docstring (tsvector + pgvector)
    for stmt in FTS_SQL:
        op.execute(stmt)
    if _has_vec(bind):
        op.execute(VEC_SQL)
    # else: EpisodicStore.open() creates and back-fills vec_entries once sqlite-vec is loadable


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS vec_entries")
        for trig in ("memory_entries_fts_ai", "memory_entries_fts_ad", "memory_entries_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trig}")
        op.execute("DROP TABLE IF EXISTS memory_fts")
    for table in ("adapters", "tasks", "embeddings", "memory_entries", "clips", "streams", "store_meta"):
        op.drop_table(table)

"""Forgetting: tombstones of forgotten entries and the forget log (both dialects).

* ``forget_log`` - who asked to forget, why, the selector (a text match only as its sha256),
  how many entries and clips left, and archived clip files still to delete.
* ``forgotten`` - one tombstone per forgotten entry: its stable ``uid`` (a fleet sync skips
  and deletes it everywhere) and local ``entry_id``; ``seq`` orders them so each process's
  derived indexes (RAM, HNSW, tantivy) apply the deletions they have not seen yet.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "forget_log",
        sa.Column("id", Id, primary_key=True),
        sa.Column("requested_by", sa.String(255), nullable=False, server_default=""),
        sa.Column("reason", sa.String(255), nullable=False, server_default=""),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("clips", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pending_files", sa.JSON(), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forget_log")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "forgotten",
        sa.Column("seq", Id, primary_key=True),
        sa.Column("uid", sa.String(32), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "forget_id",
            Id,
            sa.ForeignKey("forget_log.id", ondelete="SET NULL", name=op.f("fk_forgotten_forget_id_forget_log")),
            nullable=True,
        ),
        sa.Column("forgotten_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_forgotten")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_forgotten_uid"), "forgotten", ["uid"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_forgotten_uid"), table_name="forgotten")
    op.drop_table("forgotten")
    op.drop_table("forget_log")

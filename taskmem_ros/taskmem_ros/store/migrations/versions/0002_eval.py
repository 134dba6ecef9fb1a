"""Streaming benchmark state: runs, per-stream progress and graded answers (resumable runs).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("name", name="uq_eval_runs_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "eval_streams",
        sa.Column("id", Id, primary_key=True),
        sa.Column("run_id", Id, sa.ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(255), nullable=False),
        sa.Column("memory_stream", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("run_id", "dataset", "stream", name="uq_eval_streams_run_id_dataset_stream"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "eval_answers",
        sa.Column("id", Id, primary_key=True),
        sa.Column("run_id", Id, sa.ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("qid", sa.String(255), nullable=False),
        sa.Column("task_id", Id, sa.ForeignKey("tasks.id", ondelete="SET NULL"), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("run_id", "dataset", "qid", name="uq_eval_answers_run_id_dataset_qid"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    for table in ("eval_answers", "eval_streams", "eval_runs"):
        op.drop_table(table)

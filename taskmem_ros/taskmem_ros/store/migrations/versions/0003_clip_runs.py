"""Stable clip identity across runs: a clip is (stream, run, index within the run).

Before this revision ``clips`` was unique on (stream, clip_index) and a second run (a reboot,
a second replay into the same database) restarted at index 0 and overwrote the first run's
rows, so older entries pointed at the new run's window and transcript. Now each memorizer run
has an id (``run_id``), the segmenter's index is ``run_clip_index``, and ``clip_index`` is the
store's own per-stream ordinal, never reused: a reboot appends. Existing rows keep everything
they have (``run_id`` = '' marks them as written before runs were recorded); nothing is
"repaired", because what was overwritten cannot be recovered.

Plain ADD COLUMN + CREATE INDEX (no table rebuild), so SQLite's ON DELETE SET NULL on
``memory_entries.clip_id`` never fires during the upgrade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clips", sa.Column("run_id", sa.String(64), nullable=False, server_default=""))
    op.add_column("clips", sa.Column("run_clip_index", sa.BigInteger(), nullable=True))
    op.execute("UPDATE clips SET run_clip_index = clip_index")
    op.create_index(
        "ix_clips_stream_id_run_id_run_clip_index", "clips", ["stream_id", "run_id", "run_clip_index"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_clips_stream_id_run_id_run_clip_index", table_name="clips")
    with op.batch_alter_table("clips") as batch:
        batch.drop_column("run_clip_index")
        batch.drop_column("run_id")

"""SQLAlchemy 2 ORM schema of the episodic store (portable: SQLite and PostgreSQL).

The virtual tables (FTS5 ``memory_fts``, sqlite-vec ``vec_entries``) are SQLite-only and
live in the Alembic migration, not here, so this metadata works unchanged on PostgreSQL.
Times are int64 nanoseconds on the stream clock; ids are AUTOINCREMENT on SQLite so they
are never reused (the RAM vector index and FTS rowids rely on that). PostgreSQL-only columns
(``tsv`` full text, ``embedding`` pgvector) come from migration 0004 and are used through SQL
in ``pg_search.py``, so the ORM stays portable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; INTEGER PRIMARY KEY (the rowid, 64-bit anyway) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class StoreMeta(Base):
    """Key/value facts about the database itself (embedder id, dimension)."""

    __tablename__ = "store_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Stream(Base):
    """One sensor stream / recording session; memories never mix across streams unasked."""

    __tablename__ = "streams"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it once)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Clip(Base):
    """A window handed to the policy; entries point back to it for provenance.

    Identity is (stream, ``run_id``, ``run_clip_index``): each memorizer run (a boot, a replay)
    has its own id and its segmenter counts from 0, so a reboot appends instead of overwriting.
    ``clip_index`` is the store's per-stream ordinal over all runs (never reused)."""

    __tablename__ = "clips"
    __table_args__ = (
        UniqueConstraint("stream_id", "clip_index"),
        Index("ix_clips_stream_id_run_id_run_clip_index", "stream_id", "run_id", "run_clip_index", unique=True),
        CheckConstraint("end_ns >= start_ns", name="time_order"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    stream_id: Mapped[int] = mapped_column(Id, ForeignKey("streams.id", ondelete="CASCADE"), nullable=False)
    clip_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    run_id: Mapped[str] = mapped_column(String(64), nullable=False, default="", server_default="")
    run_clip_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    start_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    end_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    keyframes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    transcript: Mapped[str] = mapped_column(Text, nullable=False, default="")


class MemoryEntry(Base):
    """One short textual memory with the observation window it describes."""

    __tablename__ = "memory_entries"
    __table_args__ = (
        CheckConstraint("kind IN ('episodic', 'semantic')", name="kind"),
        CheckConstraint("end_ns >= start_ns", name="time_order"),
        Index(None, "stream_id", "start_ns"),
        Index(None, "stream_id", "end_ns"),
        Index(None, "end_ns"),
        Index(None, "start_ns"),
        Index(None, "uid", unique=True),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Stable identity across databases (a robot's entries synced into a fleet store keep it).
    uid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stream_id: Mapped[int] = mapped_column(Id, ForeignKey("streams.id", ondelete="CASCADE"), nullable=False)
    clip_id: Mapped[int | None] = mapped_column(Id, ForeignKey("clips.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="episodic")
    text: Mapped[str] = mapped_column(Text, nullable=False)
    start_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    end_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    source: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    model_id: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    adapter_id: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    confidence: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Embedding(Base):
    """Exact float32 vector of an entry (little-endian bytes); the LSH codes derive from it."""

    __tablename__ = "embeddings"
    entry_id: Mapped[int] = mapped_column(
        Id, ForeignKey("memory_entries.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    vector: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Task(Base):
    """A question asked of memory, what was answered, and (later) whether it was right."""

    __tablename__ = "tasks"
    __table_args__ = (Index(None, "asked_at_ns"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    stream_id: Mapped[int | None] = mapped_column(Id, ForeignKey("streams.id", ondelete="SET NULL"), nullable=True)
    question: Mapped[str] = mapped_column(Text, nullable=False)
    asked_at_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    choices: Mapped[Any] = mapped_column(JSON, nullable=True)
    answer: Mapped[str] = mapped_column(Text, nullable=False, default="")
    choice_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    abstained: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    evidence_ids: Mapped[Any] = mapped_column(JSON, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    latency_s: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    is_eval: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Adapter(Base):
    """A trained policy adapter (LoRA etc.); at most one active per kind."""

    __tablename__ = "adapters"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it once)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    adapter_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    base_model: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    path: Mapped[str] = mapped_column(Text, nullable=False, default="")
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    metrics: Mapped[Any] = mapped_column(JSON, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class EvalRun(Base):
    """A streaming benchmark run: its settings, so a resumed run can refuse to mix configs."""

    __tablename__ = "eval_runs"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it once)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    settings: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class EvalStream(Base):
    """Progress of one benchmark stream in a run ("started" -> "done"); resuming skips done ones."""

    __tablename__ = "eval_streams"
    __table_args__ = (UniqueConstraint("run_id", "dataset", "stream"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int] = mapped_column(Id, ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False)
    dataset: Mapped[str] = mapped_column(String(64), nullable=False)
    stream: Mapped[str] = mapped_column(String(255), nullable=False)
    memory_stream: Mapped[str] = mapped_column(String(255), nullable=False)  # store stream the memories went to
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    stats: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class EvalAnswer(Base):
    """One benchmark question answered (or abstained on) from memory, with its grade."""

    __tablename__ = "eval_answers"
    __table_args__ = (UniqueConstraint("run_id", "dataset", "qid"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    run_id: Mapped[int] = mapped_column(Id, ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False)
    dataset: Mapped[str] = mapped_column(String(64), nullable=False)
    qid: Mapped[str] = mapped_column(String(255), nullable=False)
    task_id: Mapped[int | None] = mapped_column(Id, ForeignKey("tasks.id", ondelete="SET NULL"), nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=False)  # the EvalResult fields
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ForgetLog(Base):
    """Who asked to forget what, and when - never the forgotten text: a text selector is kept
    only as its sha256. ``pending_files`` lists archived clip files still to delete (a crash
    between the commit and the unlink is finished by the next forget)."""

    __tablename__ = "forget_log"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it once)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    reason: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    selector: Mapped[Any] = mapped_column(JSON, nullable=False)
    entries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    clips: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pending_files: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Forgotten(Base):
    """Tombstone of a forgotten entry: its stable ``uid`` keeps a fleet sync from bringing it
    back, ``seq`` tells each process's indexes which deletions they have not applied yet."""

    __tablename__ = "forgotten"
    __table_args__ = (Index(None, "uid", unique=True), {"sqlite_autoincrement": True})
    seq: Mapped[int] = mapped_column(Id, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), nullable=False)
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # local id (not a foreign key)
    forget_id: Mapped[int | None] = mapped_column(Id, ForeignKey("forget_log.id", ondelete="SET NULL"), nullable=True)
    forgotten_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)

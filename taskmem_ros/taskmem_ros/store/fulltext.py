"""Full-text index of the embedded (SQLite) store: tantivy (Rust, BM25 with block-max WAND).

Why tantivy rather than our FTS5 queries: FTS5's ``bm25()`` is O(total postings of the query
terms) - it scores every match and counts every term's documents, whatever ``LIMIT`` says - so
exact bm25 costs ~0.5 s per query at 1M entries (benchmarks/bench_store.py --fulltext), and
the bounded variant we used before (``fts_budget``) cut the candidate set and lost more than
half of the exact top-10 at 1M. tantivy prunes with block-max WAND: the same bm25 top-10
(overlap >= 0.99 with exact FTS5) in a few ms at 1M on 2 cores. The FTS5 table stays (the
trigger-synced exact index; the tail of a lagging shared index is read from it).

Lifecycle: the index lives in ``<db>.tantivy/`` beside the SQLite file (RAM for in-memory
databases) and is derived data - the SQLite rows are authoritative:

* documents are added for ids above the highest id it holds (ids are AUTOINCREMENT, never
  reused), committed before a search uses them;
* forgotten entries leave through the ``forgotten`` tombstones (migration 0005): their ids
  are deleted and the highest applied tombstone is noted in ``taskmem.json``; a kill -9 between
  the SQLite commit and the tantivy commit only means the deletes are applied again on open;
* on open, the store identity in ``taskmem.json`` and the document count are checked against
  the table; any disagreement (another or a restored database file, a half-written index)
  rebuilds it from the rows.

One process at a time holds tantivy's writer lock (the first read-write store to open it).
Others - read-only viewers, a second node - read the committed index and find the newer
entries (the "tail") with FTS5, ranked here with the same bm25 (global document counts from
the index), so no entry is invisible while the writer catches up.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskmem_ros.store import lexical

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1  # bump when fields or tokenisation change: the index is rebuilt
META_FILE = "taskmem.json"
WRITER_HEAP = 64_000_000  # bytes; tantivy wants >= 15 MB per thread
ADD_CHUNK = 20_000
TAIL_MAX = 200_000  # a shared reader ranks at most this many of the newest unindexed matches


def _tantivy() -> Any:
    try:
        import tantivy
    except ImportError as exc:  # pragma: no cover - core dependency
        raise ImportError("full-text search needs the tantivy package (pip install tantivy)") from exc
    return tantivy


def index_text(text: str) -> str:
    """Tokens of ``text`` as tantivy's whitespace tokenizer will split them: our own folding
    (lexical.tokens, FTS5's unicode61 rule), so questions and memories tokenise alike."""
    return " ".join(t[: lexical.MAX_TERM_CHARS] for t in lexical.tokens(text) if t and not t.isspace())


def idf(n_docs: int, df: int) -> float:
    """tantivy's bm25 idf (never negative, unlike FTS5's clamped one)."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


class FullTextIndex:
    """A tantivy index over (id, stream, start_ns, end_ns, text) with exact visibility filters."""

    def __init__(self, path: str, store_uid: str, *, writable: bool, threads: int = 1) -> None:
        self.path = path  # "" = in RAM
        self.store_uid = store_uid
        self.writable = writable
        self.threads = max(1, threads)
        self.upto = 0  # every entry id <= upto that exists is indexed (or is in the tail)
        self.tomb_upto = 0  # tombstones with seq <= this are applied
        self._lock = threading.RLock()
        t = _tantivy()
        sb = t.SchemaBuilder()
        sb.add_integer_field("id", indexed=True, fast=True)
        sb.add_integer_field("stream", indexed=True, fast=True)
        sb.add_integer_field("start_ns", fast=True)
        sb.add_integer_field("end_ns", fast=True)
        sb.add_text_field("text", tokenizer_name="whitespace", index_option="freq")
        self.schema = sb.build()
        self._t = t
        self._ix: Any = None
        self._writer: Any = None
        self._searcher: Any = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def owns_writer(self) -> bool:
        return self._writer is not None

    def _read_meta(self) -> dict[str, Any]:
        try:
            return dict(json.loads((Path(self.path) / META_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return {}

    def _write_meta(self) -> None:
        if not self.path or self._writer is None:
            return
        meta = {"store_uid": self.store_uid, "schema": SCHEMA_VERSION, "tomb_upto": self.tomb_upto}
        fd, tmp = tempfile.mkstemp(dir=self.path, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, Path(self.path) / META_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self) -> bool:
        """Open (or create) the index; True when it is usable as found (identity matches)."""
        t = self._t
        if not self.path:
            self._ix = t.Index(self.schema)
            self._writer = self._ix.writer(WRITER_HEAP, self.threads)
            return False
        d = Path(self.path)
        meta = self._read_meta()
        valid = (
            d.is_dir()
            and meta.get("store_uid") == self.store_uid
            and meta.get("schema") == SCHEMA_VERSION
            and t.Index.exists(str(d))
        )
        if not valid and self.writable:
            if d.exists():
                log.warning("full-text index %s does not belong to this database: rebuilding it", d)
                self._try_wipe(d)
            d.mkdir(parents=True, exist_ok=True)
        if not valid and not self.writable:
            self.path = ""  # a private RAM index for this reader: the files are not ours to write
            self._ix = t.Index(self.schema)
            self._writer = self._ix.writer(WRITER_HEAP, self.threads)
            return False
        try:
            self._ix = t.Index(self.schema, path=str(d), reuse=True)
        except (OSError, ValueError) as exc:  # corrupt files: start over
            if not self.writable:
                raise
            log.warning("full-text index %s unreadable (%s): rebuilding it", d, exc)
            self._try_wipe(d)
            d.mkdir(parents=True, exist_ok=True)
            self._ix = t.Index(self.schema, path=str(d), reuse=False)
            valid = False
        if self.writable:
            try:
                self._writer = self._ix.writer(WRITER_HEAP, self.threads)
            except ValueError as exc:  # LockBusy: another process maintains it
                log.info("full-text index %s is maintained by another process (%s)", d, exc)
        self.tomb_upto = int(meta.get("tomb_upto", 0)) if valid else 0
        if self._writer is not None and not valid:
            self._write_meta()
        return valid

    @staticmethod
    def _try_wipe(d: Path) -> None:
        shutil.rmtree(d, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            w, self._writer = self._writer, None
            if w is not None:
                try:
                    w.wait_merging_threads()  # releases the writer lock
                except Exception as exc:
                    log.debug("full-text writer close: %s", exc)
            self._ix = None
            self._searcher = None

    # -- contents ------------------------------------------------------------------------------
    def searcher(self) -> Any:
        if self._searcher is None:
            self._ix.reload()
            self._searcher = self._ix.searcher()
        return self._searcher

    def refresh_reader(self) -> None:
        """Pick up commits of another process (cheap when nothing changed)."""
        self._searcher = None

    def num_docs(self) -> int:
        return int(self.searcher().num_docs)

    def max_id(self) -> int:
        s = self.searcher()
        if s.num_docs == 0:
            return 0
        hits = s.search(self._t.Query.all_query(), 1, count=False, order_by_field="id").hits
        if not hits:
            return 0
        return int(s.fast_field_values("id", [hits[0][1]])[0] or 0)

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Index (id, stream_id, start_ns, end_ns, text) rows (uncommitted until ``commit``)."""
        doc = self._t.Document
        w = self._writer
        for r in rows:
            w.add_document(
                doc(id=int(r[0]), stream=int(r[1]), start_ns=int(r[2]), end_ns=int(r[3]), text=index_text(r[4]))
            )
        if rows:
            self.upto = max(self.upto, int(rows[-1][0]))

    def delete(self, ids: Sequence[int]) -> None:
        for i in ids:
            self._writer.delete_documents_by_term("id", int(i))

    def clear(self) -> None:
        self._writer.delete_all_documents()
        self.upto = 0

    def commit(self) -> None:
        t0 = time.perf_counter()
        self._writer.commit()
        self._write_meta()
        self._searcher = None
        dt = time.perf_counter() - t0
        if dt > 1.0:
            log.info("full-text index committed in %.1f s", dt)

    # -- search --------------------------------------------------------------------------------
    def _filter_queries(self, flt: Any) -> list[Any]:
        q, ft = self._t.Query, self._t.FieldType.Integer
        out = []
        for field, lo, hi in (
            ("end_ns", None, flt.as_of_ns),
            ("end_ns", flt.start_ns, None),
            ("start_ns", None, flt.end_ns),
        ):
            if lo is not None or hi is not None:
                out.append(q.range_query(self.schema, field, ft, lo, hi))
        if flt.stream_id is not None:
            out.append(q.term_query(self.schema, "stream", int(flt.stream_id)))
        return [q.const_score_query(x, 0.0) for x in out]  # filters must not move bm25 scores

    def search(self, terms: Sequence[str], flt: Any, k: int) -> list[tuple[int, float]]:
        """(id, bm25) of the best ``k`` indexed entries matching any term and the filter."""
        if not terms or k <= 0:
            return []
        t = self._t
        q = t.Query
        text = q.boolean_query([(t.Occur.Should, q.term_query(self.schema, "text", term)) for term in terms])
        filters = self._filter_queries(flt)
        if filters:
            text = q.boolean_query([(t.Occur.Must, text)] + [(t.Occur.Must, f) for f in filters])
        s = self.searcher()
        hits = s.search(text, k, count=False).hits
        if not hits:
            return []
        ids = s.fast_field_values("id", [a for _, a in hits])
        return [(int(i), float(score)) for (score, _), i in zip(hits, ids, strict=True) if i is not None]

    def doc_freqs(self, terms: Sequence[str]) -> dict[str, int]:
        s = self.searcher()
        return {term: int(s.doc_freq("text", term)) for term in terms}


def rank_tail(
    texts: Sequence[str], terms: Sequence[str], df: dict[str, int], n_docs: int, avg_len: float
) -> np.ndarray:
    """bm25 (tantivy's idf, k1=1.2, b=0.75) of unindexed tail texts, so a shared reader can
    merge them with the index's own hits on one scale."""
    out = np.zeros(len(texts))
    k1, b = 1.2, 0.75
    weights = {term: idf(max(n_docs, 1), df.get(term, 0)) for term in terms}
    for i, text in enumerate(texts):
        toks = index_text(text).split()
        norm = k1 * (1 - b + b * len(toks) / max(avg_len, 1.0))
        for term in terms:
            tf = toks.count(term)
            if tf:
                out[i] += weights[term] * tf * (k1 + 1) / (tf + norm)
    return out

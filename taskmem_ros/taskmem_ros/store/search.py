"""Candidate generation for EpisodicStore.search: bounded-cost full text, LSH vectors, fusion.

Everything here runs inside the caller's read transaction (one snapshot), and every path
applies the same visibility filter (as-of, time window, stream) - see ``vector_index.Filter``.
Measured design choices (1M entries, 2 cores) are documented on each method.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import lexical
from taskmem_ros.store.models import Embedding
from taskmem_ros.store.vector_index import LSH_BYTES, BinaryIndex, Filter, lsh_codes

log = logging.getLogger(__name__)

RRF_K = 60  # reciprocal-rank-fusion constant (Cormack et al.); damps the head of each list
RERANK_FACTOR = 4  # LSH candidates per wanted vector hit, re-scored with exact floats
BULK_LOAD_MIN = 5000  # below this many new rows, load codes from floats instead of vec0
VEC0_MAX_K = 4096  # sqlite-vec's limit on k
_IN_CHUNK = 500
_V = Embedding.__table__

Ranked = list[tuple[int, float]]


def raw_rows(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Plain tuples straight from the DB-API cursor, inside ``conn``'s transaction: bulk
    loads of 1M rows spend 10 s in SQLAlchemy Row objects otherwise. ``?`` placeholders."""
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def fetch_vectors(conn: Connection, ids: list[int]) -> dict[int, np.ndarray]:
    """Stored float32 vectors by entry id (ids without a vector are absent)."""
    found: dict[int, np.ndarray] = {}
    uniq = list(dict.fromkeys(ids))
    for k in range(0, len(uniq), _IN_CHUNK):
        chunk = uniq[k : k + _IN_CHUNK]
        for eid, blob in conn.execute(select(_V.c.entry_id, _V.c.vector).where(_V.c.entry_id.in_(chunk))).all():
            found[int(eid)] = np.frombuffer(blob, dtype="<f4")
    return found


class Searcher:
    """Per-store search state: the RAM LSH index and a document-frequency cache."""

    def __init__(self, cfg: StoreConfig, dim: int) -> None:
        self.cfg = cfg
        self.dim = dim
        self.index = BinaryIndex()
        self._lock = threading.Lock()
        self._df: dict[str, tuple[int, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self.index = BinaryIndex()
            self._df.clear()

    # -- index maintenance -------------------------------------------------------------------
    def refresh(self, conn: Connection, *, vec_table: bool) -> None:
        """Bring the RAM index up to the snapshot of ``conn`` (new ids only; see vector_index)."""
        with self._lock:
            newest = int(raw_rows(conn, "SELECT max(id) FROM memory_entries")[0][0] or 0)
            if newest < self.index.max_id:  # rows deleted / file replaced: start over
                self.index.clear()
            last = self.index.max_id
            if newest == last:
                return
            if last == 0 and vec_table and newest >= BULK_LOAD_MIN:
                self._bulk_load(conn)
                last = self.index.max_id
                if newest == last:
                    return
            rows = raw_rows(
                conn,
                "SELECT e.id, e.stream_id, e.start_ns, e.end_ns, v.vector FROM memory_entries e "
                "LEFT JOIN embeddings v ON v.entry_id = e.id WHERE e.id > ? ORDER BY e.id",
                (last,),
            )
            if not rows:
                return
            vecs = np.zeros((len(rows), self.dim), np.float32)
            has = np.zeros(len(rows), bool)
            for k, r in enumerate(rows):
                if r[4] is not None and len(r[4]) == 4 * self.dim:
                    vecs[k] = np.frombuffer(r[4], dtype="<f4")
                    has[k] = True
            meta = np.array([r[:4] for r in rows], dtype=np.int64)
            self.index.append(meta[:, 0], meta[:, 1], meta[:, 2], meta[:, 3], lsh_codes(vecs), has)

    def _bulk_load(self, conn: Connection) -> None:
        """Cold start: metadata from memory_entries, codes from the narrow vec0 table
        (3.4 s for 1M entries; the float vectors would be 1.5 GB to read)."""
        t0 = time.perf_counter()
        meta_rows = raw_rows(conn, "SELECT id, stream_id, start_ns, end_ns FROM memory_entries ORDER BY id")
        meta = np.array(meta_rows, dtype=np.int64).reshape(-1, 4)
        del meta_rows
        code_rows = raw_rows(conn, "SELECT rowid, code FROM vec_entries")
        codes = np.zeros((len(meta), LSH_BYTES), np.uint8)
        has = np.zeros(len(meta), bool)
        if code_rows:
            cids = np.fromiter((r[0] for r in code_rows), np.int64, len(code_rows))
            blob = np.frombuffer(b"".join(r[1] for r in code_rows), np.uint8).reshape(len(code_rows), -1)
            pos = np.searchsorted(meta[:, 0], cids)
            ok = (pos < len(meta)) & (meta[np.minimum(pos, len(meta) - 1), 0] == cids)
            codes[pos[ok]] = blob[ok, :LSH_BYTES]
            has[pos[ok]] = True
        self.index.append(meta[:, 0], meta[:, 1], meta[:, 2], meta[:, 3], codes, has)
        log.info("vector index loaded: %d entries in %.1f s", len(meta), time.perf_counter() - t0)

    # -- fusion ------------------------------------------------------------------------------
    def fuse(self, fts: Ranked, vec: Ranked) -> Ranked:
        """Weighted reciprocal-rank fusion, normalised so an entry ranked first by both is 1.

        RRF rather than mixing raw scores: bm25 and cosine live on unrelated scales, and
        the bounded full-text path ranks some queries with a Python bm25."""
        wf, wv = self.cfg.fts_weight, self.cfg.vector_weight
        score: dict[int, float] = {}
        for rank, (i, _) in enumerate(fts):
            score[i] = score.get(i, 0.0) + wf / (RRF_K + rank + 1)
        for rank, (i, _) in enumerate(vec):
            score[i] = score.get(i, 0.0) + wv / (RRF_K + rank + 1)
        norm = (wf + wv) / (RRF_K + 1)
        return sorted(((i, s / norm) for i, s in score.items()), key=lambda t: -t[1])

    # -- full text ---------------------------------------------------------------------------
    def _doc_freq(self, conn: Connection, term: str) -> int:
        """Number of entries containing ``term``, capped at fts_budget+1 so counting a term
        like "the" in 1M rows stays cheap (0.3 ms); cached until the store grows by ~10%."""
        n = len(self.index)
        hit = self._df.get(term)
        if hit is not None and n <= hit[1] * 1.1 + 100:
            return hit[0]
        rows = raw_rows(
            conn,
            "SELECT count(*) FROM (SELECT 1 FROM memory_fts WHERE memory_fts MATCH ? LIMIT ?)",
            (lexical.quote(term), self.cfg.fts_budget + 1),
        )
        df = int(rows[0][0] or 0)
        if len(self._df) > 50_000:
            self._df.clear()
        self._df[term] = (df, n)
        return df

    def fts(self, conn: Connection, terms: list[str], flt: Filter, pool: int) -> Ranked:
        """Full-text (id, score) of visible entries, best first, at bounded cost.

        FTS5's bm25 is O(total postings of the query terms): besides scoring each match
        it counts every term's documents for the IDF, whatever the rowid range - ~13 ms
        for three words that each occur in 10% of 1M entries. So:

        * rare terms (together in <= fts_budget entries): OR them and let FTS5 rank by
          bm25 (rare terms carry nearly all of bm25's weight anyway);
        * only common terms: take the newest matches before the as-of bound - entries
          with all terms first, then any term - without FTS5 ranking (cheap rowid-order
          scan), and rank those few hundred with bm25 computed here.

        The visible id range (from the RAM index) bounds the FTS5 rowid scan; the exact
        filter is then applied per candidate.
        """
        if not terms:
            return []
        bounds = self.index.id_range(flt)
        if bounds is None:
            return []
        lo, hi = bounds
        budget = self.cfg.fts_budget
        df = {t: self._doc_freq(conn, t) for t in terms}
        ordered = sorted((t for t in terms if df[t] > 0), key=lambda t: df[t])
        if not ordered:
            return []
        chosen: list[str] = []
        total = 0
        for t in ordered:
            if total + df[t] > budget:
                break
            chosen.append(t)
            total += df[t]
        if not chosen:
            return self._fts_common(conn, ordered, df, flt, lo, hi, pool)
        expr = lexical.any_of(chosen)
        sql = (
            "SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ? AND rowid BETWEEN ? AND ? "
            "ORDER BY rank LIMIT ?"
        )
        want = pool * 4
        while True:
            rows = raw_rows(conn, sql, (expr, lo, hi, want))
            if not rows:
                return []
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            ok = self.index.visible(ids, flt)
            kept = [(int(r[0]), -float(r[1])) for r, v in zip(rows, ok, strict=True) if v]
            if len(kept) >= pool or len(rows) < want or want >= budget:
                return kept[:pool]
            want = budget

    def _fts_common(
        self, conn: Connection, terms: list[str], df: dict[str, int], flt: Filter, lo: int, hi: int, pool: int
    ) -> Ranked:
        """Newest visible matches of common-only queries, bm25-ranked in Python (see fts)."""
        want = pool * 4
        found: dict[int, str] = {}
        exprs = ([lexical.all_of(terms)] if len(terms) > 1 else []) + [lexical.any_of(terms)]
        sql = (
            "SELECT rowid, text FROM memory_fts WHERE memory_fts MATCH ? AND rowid BETWEEN ? AND ? "
            "ORDER BY rowid DESC LIMIT ?"
        )
        for expr in exprs:
            upper, scanned = hi, 0
            while len(found) < want and scanned < self.cfg.fts_budget and upper >= lo:
                rows = raw_rows(conn, sql, (expr, lo, upper, want))
                if not rows:
                    break
                scanned += len(rows)
                ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
                for r, v in zip(rows, self.index.visible(ids, flt), strict=True):
                    if v and len(found) < want:
                        found.setdefault(int(r[0]), r[1])
                upper = int(rows[-1][0]) - 1
                if len(rows) < want:
                    break
            if len(found) >= want:
                break
        if not found:
            return []
        found_ids = list(found)
        scores = lexical.bm25([found[i] for i in found_ids], terms, df, max(len(self.index), 1))
        order = np.argsort(-scores, kind="stable")[:pool]
        return [(found_ids[j], float(scores[j])) for j in order]

    # -- vectors -----------------------------------------------------------------------------
    def vector(self, conn: Connection, qvec: np.ndarray, flt: Filter, pool: int, *, use_vec0: bool) -> Ranked:
        """(id, cosine) of the ``pool`` best visible entries: LSH candidates, float re-rank."""
        qcode = lsh_codes(qvec[None, :])[0]
        k = pool * RERANK_FACTOR
        cand: list[int]
        if use_vec0:
            cand = self._vec0_knn(conn, qcode, flt, min(k, VEC0_MAX_K))
        else:
            cand = [int(i) for i in self.index.candidates(qcode, flt, k)]
        if not cand:
            return []
        found = fetch_vectors(conn, cand)
        ids = [i for i in cand if i in found and len(found[i]) == len(qvec)]
        if not ids:
            return []
        sims = np.stack([found[i] for i in ids]) @ qvec
        order = np.lexsort((np.asarray(ids), -sims))[:pool]  # ties: older entry first, deterministic
        return [(ids[j], float(sims[j])) for j in order]

    @staticmethod
    def _vec0_knn(conn: Connection, qcode: np.ndarray, flt: Filter, k: int) -> list[int]:
        """KNN inside SQLite (sqlite-vec): filters are vec0 metadata/partition constraints.
        Exact over the codes, but O(rows x k): ~100 ms for k=100 at 1M rows."""
        where = ["code MATCH vec_bit(?)", "k = ?"]
        args: list[Any] = [qcode.tobytes(), k]
        for clause, value in (
            ("stream_id = ?", flt.stream_id),
            ("end_ns <= ?", flt.as_of_ns),
            ("end_ns >= ?", flt.start_ns),
            ("start_ns <= ?", flt.end_ns),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT rowid FROM vec_entries WHERE {' AND '.join(where)} ORDER BY distance"
        return [int(r[0]) for r in raw_rows(conn, sql, tuple(args))]

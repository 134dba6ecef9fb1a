"""Candidate generation on PostgreSQL: tsvector full text and pgvector HNSW, filtered in SQL.

Same contract as ``search.Searcher`` on SQLite: ``(id, score)`` best first, the as-of /
time-window / stream visibility (``vector_index.Filter``) applied on every path, and the same
reciprocal-rank fusion (``search.fuse``) on top. No RAM index: with many concurrent writers
ids are not committed in id order, so the database's own indexes are the only consistent view.

Hostile text: the query is tokenised by ``lexical.query_terms`` and each term reaches
PostgreSQL only as a bound parameter of ``plainto_tsquery`` - never as tsquery syntax.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from sqlalchemy import Connection

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import lexical
from taskmem_ros.store.rawsql import raw_rows
from taskmem_ros.store.search import Ranked
from taskmem_ros.store.vector_index import Filter

TS_CONFIG = "simple"  # language-neutral (robots hear many languages); must match migration 0004
HNSW_EF_SEARCH_MIN = 400  # recall@10 on 30k hash vectors under as-of filters: ef 100 -> 0.76, 200 -> 0.87, 400 -> 0.98


def where(flt: Filter, prefix: str = "") -> tuple[str, list[Any]]:
    """SQL conditions (``?`` placeholders) for ``flt`` on memory_entries."""
    clauses, args = flt.sql_clauses(prefix)
    return (" AND ".join(clauses) if clauses else "TRUE"), args


def vector_literal(vec: np.ndarray) -> str:
    """pgvector's text input form ``[x1,x2,...]`` (bound as a parameter, cast with ::vector)."""
    return "[" + ",".join(f"{float(x):.8g}" for x in np.asarray(vec, np.float32)) + "]"


def _any_of(terms: list[str]) -> tuple[str, list[str]]:
    return " || ".join([f"plainto_tsquery('{TS_CONFIG}', ?)"] * len(terms)), list(terms)


class PgSearcher:
    """Per-store PostgreSQL search state: only a document-frequency cache."""

    def __init__(self, cfg: StoreConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._df: dict[str, tuple[int, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._df.clear()

    # -- full text ---------------------------------------------------------------------------
    def _doc_freq(self, conn: Connection, term: str, n: int) -> int:
        """Entries containing ``term``, capped at fts_budget+1 (a GIN lookup); cached until
        the store grows by ~10 %, as on SQLite."""
        with self._lock:
            hit = self._df.get(term)
        if hit is not None and n <= hit[1] * 1.1 + 100:
            return hit[0]
        rows = raw_rows(
            conn,
            f"SELECT count(*) FROM (SELECT 1 FROM memory_entries WHERE tsv @@ plainto_tsquery('{TS_CONFIG}', ?) "
            "LIMIT ?) s",
            (term, self.cfg.fts_budget + 1),
        )
        df = int(rows[0][0] or 0)
        with self._lock:
            if len(self._df) > 50_000:
                self._df.clear()
            self._df[term] = (df, n)
        return df

    def fts(self, conn: Connection, query: str, flt: Filter, pool: int) -> Ranked:
        """(id, ts_rank_cd) of visible matches, best first, at bounded cost.

        The same plan as SQLite's (see ``Searcher.fts``): rare terms (together in <=
        fts_budget entries) are OR-ed and every visible match is ranked; a query of only
        common terms ranks the newest visible matches - all terms first, then any term.
        """
        terms = lexical.query_terms(query, fold_accents=False)
        if not terms:
            return []
        n = int(raw_rows(conn, "SELECT coalesce(max(id), 0) FROM memory_entries")[0][0])
        df = {t: self._doc_freq(conn, t, n) for t in terms}
        ordered, chosen = lexical.budget_terms(df, self.cfg.fts_budget)
        if not ordered:
            return []
        cond, cargs = where(flt)
        if chosen:
            q, qargs = _any_of(chosen)
            sql = (
                f"SELECT id, ts_rank_cd(tsv, q) AS r FROM memory_entries, ({'SELECT ' + q + ' AS q'}) qq "
                f"WHERE tsv @@ q AND {cond} ORDER BY r DESC, id LIMIT ?"
            )
            return [(int(i), float(r)) for i, r in raw_rows(conn, sql, (*qargs, *cargs, pool))]
        return self._fts_common(conn, ordered, cond, cargs, pool)

    def _fts_common(self, conn: Connection, terms: list[str], cond: str, cargs: list[Any], pool: int) -> Ranked:
        want = pool * 4
        rank_q, rank_args = _any_of(terms)
        matchers: list[tuple[str, list[str]]] = []
        if len(terms) > 1:
            matchers.append((f"plainto_tsquery('{TS_CONFIG}', ?)", [" ".join(terms)]))  # all terms
        matchers.append((rank_q, rank_args))
        found: dict[int, float] = {}
        for match_q, match_args in matchers:
            sql = (
                f"SELECT id, ts_rank_cd(tsv, {rank_q}) FROM memory_entries WHERE tsv @@ ({match_q}) AND {cond} "
                "ORDER BY id DESC LIMIT ?"
            )
            for i, r in raw_rows(conn, sql, (*rank_args, *match_args, *cargs, want - len(found))):
                found.setdefault(int(i), float(r))
            if len(found) >= want:
                break
        ranked = sorted(found.items(), key=lambda t: (-t[1], t[0]))
        return ranked[:pool]

    # -- vectors -----------------------------------------------------------------------------
    def vector(self, conn: Connection, qvec: np.ndarray, flt: Filter, pool: int) -> Ranked:
        """(id, cosine) of the ``pool`` nearest visible entries through the HNSW index.

        ``hnsw.iterative_scan = relaxed_order`` (pgvector >= 0.8) keeps scanning the graph
        until enough rows pass the SQL filter, so a selective as-of bound still fills the
        pool; relaxed order is re-sorted exactly in the outer query. When the filter is very
        selective the planner takes the btree on end_ns and sorts exactly instead."""
        raw_rows(
            conn,
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', ?, true)",
            (str(max(HNSW_EF_SEARCH_MIN, pool)),),
        )
        cond, cargs = where(flt)
        lit = vector_literal(qvec)
        sql = (
            "WITH c AS MATERIALIZED (SELECT id, embedding <=> ?::vector AS d FROM memory_entries "
            f"WHERE embedding IS NOT NULL AND {cond} ORDER BY embedding <=> ?::vector LIMIT ?) "
            "SELECT id, 1 - d FROM c ORDER BY d, id"
        )
        return [(int(i), float(s)) for i, s in raw_rows(conn, sql, (lit, *cargs, lit, pool))]

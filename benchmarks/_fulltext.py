"""Full-text table and forget throughput for bench_store.py (``--fulltext``).

Three engines on the same SQLite database, the same questions and as-of times:

* ``bounded``: the store's full-text path before issue 15 (FTS5 with an ``fts_budget`` on the
  candidates, Python bm25 for common-only queries), kept here verbatim for the comparison;
* ``exact``: FTS5's own bm25 over every match (``ORDER BY rank``), the quality reference;
* ``tantivy``: what ``EpisodicStore.search(mode="fts")`` uses now (store/fulltext.py).

hit@10: the memory the question paraphrases is in the top 10; overlap: share of the exact
top-10 that an engine returns (ties with the exact 10th score count as found).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore, lexical
from taskmem_ros.store.forget import ForgetSelector
from taskmem_ros.store.rawsql import raw_rows
from taskmem_ros.store.vector_index import Filter
from taskmem_ros.types import MemoryDraft


class BoundedFts:
    """The pre-issue-15 ``Searcher.fts`` (bounded candidate budget)."""

    def __init__(self, index: Any, budget: int = 10_000) -> None:
        self.index = index
        self.budget = budget
        self._df: dict[str, tuple[int, int]] = {}

    def _doc_freq(self, conn: Any, term: str) -> int:
        n = len(self.index)
        hit = self._df.get(term)
        if hit is not None and n <= hit[1] * 1.1 + 100:
            return hit[0]
        rows = raw_rows(
            conn,
            "SELECT count(*) FROM (SELECT 1 FROM memory_fts WHERE memory_fts MATCH ? LIMIT ?)",
            (lexical.quote(term), self.budget + 1),
        )
        df = int(rows[0][0] or 0)
        self._df[term] = (df, n)
        return df

    def fts(self, conn: Any, terms: list[str], flt: Filter, pool: int) -> list[tuple[int, float]]:
        if not terms:
            return []
        bounds = self.index.id_range(flt)
        if bounds is None:
            return []
        lo, hi = bounds
        df = {t: self._doc_freq(conn, t) for t in terms}
        ordered = sorted((t for t in terms if df[t] > 0), key=lambda t: df[t])
        if not ordered:
            return []
        chosen: list[str] = []
        total = 0
        for t in ordered:
            if total + df[t] > self.budget:
                break
            chosen.append(t)
            total += df[t]
        if not chosen:
            return self._common(conn, ordered, df, flt, lo, hi, pool)
        sql = (
            "SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ? AND rowid BETWEEN ? AND ? "
            "ORDER BY rank LIMIT ?"
        )
        want = pool * 4
        while True:
            rows = raw_rows(conn, sql, (lexical.any_of(chosen), lo, hi, want))
            if not rows:
                return []
            ok = self.index.visible(np.fromiter((r[0] for r in rows), np.int64, len(rows)), flt)
            kept = [(int(r[0]), -float(r[1])) for r, v in zip(rows, ok, strict=True) if v]
            if len(kept) >= pool or len(rows) < want or want >= self.budget:
                return kept[:pool]
            want = self.budget

    def _common(self, conn: Any, terms: list[str], df: dict[str, int], flt: Filter, lo: int, hi: int, pool: int):
        want = pool * 4
        found: dict[int, str] = {}
        exprs = ([lexical.all_of(terms)] if len(terms) > 1 else []) + [lexical.any_of(terms)]
        sql = (
            "SELECT rowid, text FROM memory_fts WHERE memory_fts MATCH ? AND rowid BETWEEN ? AND ? "
            "ORDER BY rowid DESC LIMIT ?"
        )
        for expr in exprs:
            upper, scanned = hi, 0
            while len(found) < want and scanned < self.budget and upper >= lo:
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
        ids_ = list(found)
        scores = lexical.bm25([found[i] for i in ids_], terms, df, max(len(self.index), 1))
        order = np.argsort(-scores, kind="stable")[:pool]
        return [(ids_[j], float(scores[j])) for j in order]


def _exact(conn: Any, terms: list[str], as_of: int, k: int) -> list[tuple[int, float]]:
    rows = raw_rows(
        conn,
        "SELECT f.rowid, f.rank FROM memory_fts f JOIN memory_entries e ON e.id = f.rowid "
        "WHERE memory_fts MATCH ? AND e.end_ns <= ? ORDER BY f.rank LIMIT ?",
        (lexical.any_of(terms), as_of, k),
    )
    return [(int(r[0]), -float(r[1])) for r in rows]


def _exact_scores(conn: Any, terms: list[str], ids: list[int]) -> dict[int, float]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = raw_rows(
        conn,
        f"SELECT rowid, rank FROM memory_fts WHERE memory_fts MATCH ? AND rowid IN ({marks})",
        (lexical.any_of(terms), *ids),
    )
    return {int(r[0]): -float(r[1]) for r in rows}


def _pct(v: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(v) * 1000.0, q))


def fulltext_table(url: str, sizes: list[int], queries: int, sentences: Any, question_for: Any) -> dict[str, Any]:
    """Grow one database through ``sizes``; at each, time and grade the three engines."""
    cfg = StoreConfig(url=url, embedder="hash", embedding_dim=16)  # vectors are not what this measures
    step = 10 * 1_000_000_000
    texts: list[str] = []
    rows_out: list[dict[str, Any]] = []
    rng = np.random.default_rng(11)
    store = EpisodicStore(cfg).open()
    try:
        for size in sizes:
            while len(texts) < size:
                m = min(5000, size - len(texts))
                batch = sentences(m, seed=5000 + len(texts))
                n0 = len(texts)
                drafts = [
                    MemoryDraft(t, start_ns=(n0 + i) * step, end_ns=(n0 + i + 1) * step) for i, t in enumerate(batch)
                ]
                vecs = rng.standard_normal((m, 16)).astype(np.float32)
                store.add_entries("bench", drafts, embeddings=vecs)
                texts.extend(batch)
            t0 = time.perf_counter()
            store.search("warm up", mode="fts")
            build_s = time.perf_counter() - t0
            targets = rng.integers(size, size=queries)
            qs = [question_for(texts[t], rng) for t in targets]
            as_of = [int((t + 1 + rng.integers(0, max(1, size - t))) * step) for t in targets]
            bounded = BoundedFts(store._search.index)
            res: dict[str, dict[str, list[float]]] = {
                e: {"lat": [], "hit": [], "ov": []} for e in ("bounded", "exact", "tantivy")
            }
            with store._tx("bench", write=False) as conn:
                for q, a, t in zip(qs, as_of, targets, strict=True):
                    terms = lexical.query_terms(q)
                    t0 = time.perf_counter()
                    ref = _exact(conn, terms, a, 10)
                    res["exact"]["lat"].append(time.perf_counter() - t0)
                    flt = Filter(as_of_ns=a)
                    t0 = time.perf_counter()
                    got_b = bounded.fts(conn, terms, flt, 100)[:10]
                    res["bounded"]["lat"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    got_t = [(r.record.id, r.score) for r in store.search(q, mode="fts", as_of_ns=a, limit=10)]
                    res["tantivy"]["lat"].append(time.perf_counter() - t0)
                    kth = min((s for _, s in ref), default=0.0)
                    for name, got in (("exact", ref), ("bounded", got_b), ("tantivy", got_t)):
                        ids = [i for i, _ in got]
                        res[name]["hit"].append(float(int(t) + 1 in ids))
                        if ref:
                            sc = _exact_scores(conn, terms, ids)
                            found = sum(sc.get(i, -1e9) >= kth - 1e-9 for i in ids)
                            res[name]["ov"].append(min(found, len(ref)) / len(ref))
            for name, r in res.items():
                row = {
                    "entries": size,
                    "engine": name,
                    "p50_ms": _pct(r["lat"], 50),
                    "p95_ms": _pct(r["lat"], 95),
                    "hit_at_10": float(np.mean(r["hit"])),
                    "overlap_exact_top10": float(np.mean(r["ov"])) if r["ov"] else float("nan"),
                    "queries": queries,
                }
                if name == "tantivy":
                    row["index_build_s"] = build_s
                rows_out.append(row)
                print(
                    f"  {size:>8d} {name:>8s}  p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  "
                    f"hit@10 {row['hit_at_10']:.3f}  overlap {row['overlap_exact_top10']:.3f}",
                    flush=True,
                )
        forget = forget_throughput(store, len(texts), rng)
    finally:
        store.close()
    return {"fulltext": rows_out, "forget": forget}


def forget_throughput(store: EpisodicStore, n: int, rng: np.random.Generator) -> dict[str, Any]:
    """Forget 10k random entries by id, then 1k by text; time the commit and the first search
    after it (the indexes applying the tombstones)."""
    out: dict[str, Any] = {"entries_before": n}
    ids = tuple(int(i) + 1 for i in rng.choice(n, size=min(10_000, n // 2), replace=False))
    t0 = time.perf_counter()
    res = store.forget(ForgetSelector(ids=ids), dry_run=False, requested_by="bench")
    out["by_ids"] = {"entries": res.entries, "s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    store.search("red mug", mode="hybrid")
    out["by_ids"]["first_search_after_s"] = time.perf_counter() - t0
    sel = ForgetSelector(text="thermos", kind="episodic")
    t0 = time.perf_counter()
    preview = store.forget(sel, dry_run=True)
    out["by_text_preview_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = store.forget(sel, dry_run=False, requested_by="bench")
    out["by_text"] = {"entries": res.entries, "preview_entries": preview.entries, "s": time.perf_counter() - t0}
    for k in ("by_ids", "by_text"):
        out[k]["per_s"] = out[k]["entries"] / max(out[k]["s"], 1e-9)
    print(f"  forget: {out}", flush=True)
    return out

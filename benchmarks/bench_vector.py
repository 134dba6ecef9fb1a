#!/usr/bin/env python3
"""Embedded vector index benchmark: ours (LSH + float re-rank) vs hnswlib HNSW (filter
predicate) vs the tiered index the store uses vs exact brute force, under as-of filters.

For each size: N x 384 vectors in time order (entry i ends at i), 200 queries, top-10, with
as-of filters keeping 100 / 50 / 5 % of the entries. Recall@10 is against exact float brute
force over the visible entries; latency is one query at a time on one thread.

    nice -n 10 python benchmarks/bench_vector.py --sizes 100000,1000000

Vectors: ``--embedder hash`` (default; exact, any size), ``minilm-real`` (every entry's own text
through the real MiniLM model: ~100k texts take minutes on 2 cores, so the vectors are cached
in a temporary .npy for the run and deleted after it) or ``minilm`` (MiniLM on a few thousand
base sentences, each entry its base vector plus noise - see bench_store.py).

Recall counts ties: a returned entry is a hit when its exact cosine reaches the 10th true
neighbour's (the hashing embedder maps repeated sentences to identical vectors, and any of
them is a correct answer).

usearch (``--usearch-max``, default 100k: its 1M build is ~2x hnswlib's) has no filter
predicate in Python, so it searches unfiltered with ``k / visible share`` oversampling and
filters the results.
``--sqlite-vec`` adds sqlite-vec's float KNN (vec0 with an end_ns metadata filter), the
brute force that runs inside SQLite (slow to build at 1M: off by default there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "taskmem_ros"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_store import VectorSource, question_for, sentences  # noqa: E402

from taskmem_ros.store.hnsw_index import HnswIndex  # noqa: E402
from taskmem_ros.store.vector_index import BinaryIndex, Filter, lsh_codes  # noqa: E402

SELECTIVITY = (1.0, 0.5, 0.05)
POOL, RERANK, K = 100, 4, 10  # the store's candidate pool, LSH re-rank factor, top-k


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def exact(vecs: np.ndarray, q: np.ndarray, cutoff: int, k: int) -> np.ndarray:
    sims = vecs[:cutoff] @ q
    top = np.argpartition(-sims, min(k, cutoff) - 1)[:k]
    return top[np.argsort(-sims[top])]


def recall(vecs: np.ndarray, q: np.ndarray, got: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top-k matched, ties counted (see the module docstring)."""
    if len(got) == 0:
        return 0.0
    bar = float(vecs[truth[-1]] @ q) - 1e-5
    return min(len(truth), int(np.count_nonzero(vecs[got] @ q >= bar))) / len(truth)


def real_minilm(texts: list[str], source: VectorSource, cache: Path) -> np.ndarray:
    """Each text embedded by MiniLM (distinct texts once), cached for this run only."""
    path = cache / f"minilm_{len(texts)}.npy"
    if path.is_file():
        return np.load(path)
    uniq = list(dict.fromkeys(texts))
    t0 = time.perf_counter()
    parts = []
    for lo in range(0, len(uniq), 4096):
        parts.append(source.embedder.embed(uniq[lo : lo + 4096]))
        print(f"  minilm: {lo + len(parts[-1]):,} / {len(uniq):,} texts, {time.perf_counter() - t0:.0f} s", flush=True)
    pos = {t: i for i, t in enumerate(uniq)}
    vecs = np.concatenate(parts)[[pos[t] for t in texts]].astype(np.float32)
    np.save(path, vecs)
    return vecs


def run_size(n: int, args: argparse.Namespace, source: VectorSource, rng: np.random.Generator) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    texts = sentences(n, seed=n)
    vecs = real_minilm(texts, source, args.cache) if args.embedder == "minilm-real" else source.entries(texts, rng)
    qtexts = [question_for(texts[int(i)], rng) for i in rng.integers(n, size=args.queries)]
    queries = source.embedder.embed(qtexts)
    print(f"n={n}: vectors in {time.perf_counter() - t0:.1f} s")
    ids = np.arange(1, n + 1, dtype=np.int64)  # store ids start at 1
    ends = np.arange(n, dtype=np.int64)

    engines: dict[str, Any] = {}
    t0 = time.perf_counter()
    lsh = BinaryIndex()
    for lo in range(0, n, 100_000):
        sl = slice(lo, min(n, lo + 100_000))
        lsh.append(ids[sl], np.zeros(sl.stop - sl.start, np.int64), ends[sl], ends[sl], lsh_codes(vecs[sl]))
    build = {"ours (LSH + float re-rank)": time.perf_counter() - t0}

    def ours_at(factor: int) -> Any:
        def ours(q: np.ndarray, flt: Filter) -> np.ndarray:
            cand = lsh.candidates(lsh_codes(q[None, :])[0], flt, POOL * factor) - 1
            sims = vecs[cand] @ q
            return cand[np.argsort(-sims)[:K]]

        return ours

    ours = ours_at(RERANK)
    engines["ours (LSH + float re-rank)"] = ours
    engines[f"ours, {4 * RERANK}x re-rank"] = ours_at(4 * RERANK)

    t0 = time.perf_counter()
    hnsw = HnswIndex(vecs.shape[1], threads=args.build_threads)
    hnsw.add(ids, vecs)
    hnsw_build = time.perf_counter() - t0
    efs = [int(e) for e in str(args.ef).split(",")]

    def library_at(ef: int) -> Any:
        def library(q: np.ndarray, flt: Filter) -> np.ndarray:
            hnsw.ef = ef
            mask = lsh.mask(flt)  # the store's own visibility mask (position i = label i + 1)
            return hnsw.search(q, K, mask=mask, base=1)[0] - 1

        return library

    for ef in efs:
        name = f"hnswlib HNSW ef={ef} (filter predicate)"
        engines[name], build[name] = library_at(ef), hnsw_build
    library = library_at(HnswIndex.DEFAULT_EF)  # the store's setting

    def tiered(q: np.ndarray, flt: Filter) -> np.ndarray:
        """What the store does: HNSW when the filter keeps enough entries, else exact float
        scores over the visible LSH pre-selection (see store/hnsw_index.py)."""
        mask = lsh.mask(flt)
        if mask.mean() >= args.tier:
            return library(q, flt)
        return ours(q, flt)

    engines[f"tiered (HNSW >= {args.tier:.0%} visible, else LSH)"] = tiered

    def brute(q: np.ndarray, flt: Filter) -> np.ndarray:
        return exact(vecs, q, int(flt.as_of_ns or n - 1) + 1, K)

    engines["numpy brute force (float32)"] = brute

    if n <= args.usearch_max:
        for name, fn, secs in usearch_engines(vecs, ids, efs, args.build_threads):
            engines[name], build[name] = fn, secs

    if args.sqlite_vec:
        vec0, build["sqlite-vec brute force (vec0 float[384])"] = sqlite_vec_engine(vecs, ends)
        engines["sqlite-vec brute force (vec0 float[384])"] = vec0

    truths = {sel: [exact(vecs, q, max(K, int(n * sel)), K) for q in queries] for sel in SELECTIVITY}
    rows = []
    for name, fn in engines.items():
        row: dict[str, Any] = {"engine": name, "n": n, "build_s": round(build.get(name, 0.0), 1)}
        for sel in SELECTIVITY:
            cutoff = max(K, int(n * sel))
            flt = Filter(as_of_ns=cutoff - 1)
            lat, rec = [], []
            for q, truth in zip(queries, truths[sel], strict=True):
                t = time.perf_counter()
                got = fn(q, flt)
                lat.append(time.perf_counter() - t)
                assert np.all(got < cutoff), f"{name} returned a future entry"
                rec.append(recall(vecs, q, got, truth))
            row[f"p50_ms@{sel:.0%}"] = round(pct(lat, 50), 2)
            row[f"p95_ms@{sel:.0%}"] = round(pct(lat, 95), 2)
            row[f"recall@{sel:.0%}"] = round(float(np.mean(rec)), 3)
        print_row(row)
        rows.append(row)
    if args.reopen_dir:
        rows.append(reopen(hnsw, Path(args.reopen_dir), n))
    return rows


def usearch_engines(vecs: np.ndarray, ids: np.ndarray, efs: list[int], threads: int) -> list[tuple[str, Any, float]]:
    """usearch HNSW at the same M / ef_construction, post-filtered (it has no predicate)."""
    from usearch.index import Index

    t0 = time.perf_counter()
    index = Index(ndim=vecs.shape[1], metric="cos", connectivity=HnswIndex.M, expansion_add=HnswIndex.EF_CONSTRUCTION)
    index.add(ids, vecs, threads=threads)
    secs = time.perf_counter() - t0
    n = len(vecs)
    out = []
    for ef in efs:

        def search(q: np.ndarray, flt: Filter, ef: int = ef) -> np.ndarray:
            cutoff = int(flt.as_of_ns if flt.as_of_ns is not None else n - 1) + 1
            want = min(n, int(np.ceil(K * n / cutoff * 1.5)))
            index.expansion_search = max(ef, want)
            keys = np.asarray(index.search(q, want, threads=1).keys, np.int64) - 1
            return keys[keys < cutoff][:K]

        out.append((f"usearch HNSW ef={ef} (post-filter)", search, secs))
    return out


def sqlite_vec_engine(vecs: np.ndarray, ends: np.ndarray) -> tuple[Any, float]:
    import sqlite_vec

    from taskmem_ros.store.engine import sqlite_module

    mod, _ = sqlite_module()
    conn = mod.connect(":memory:")
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    t0 = time.perf_counter()
    conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(end_ns integer, e float[{vecs.shape[1]}])")
    for lo in range(0, len(vecs), 10_000):
        conn.executemany(
            "INSERT INTO v(rowid, end_ns, e) VALUES (?, ?, ?)",
            [(lo + i, int(ends[lo + i]), vecs[lo + i].tobytes()) for i in range(min(10_000, len(vecs) - lo))],
        )
    build = time.perf_counter() - t0

    def search(q: np.ndarray, flt: Filter) -> np.ndarray:
        rows = conn.execute(
            "SELECT rowid FROM v WHERE e MATCH ? AND k = ? AND end_ns <= ? ORDER BY distance",
            (q.astype(np.float32).tobytes(), K, int(flt.as_of_ns or 0)),
        ).fetchall()
        return np.array([r[0] for r in rows], np.int64)

    return search, build


def reopen(hnsw: HnswIndex, folder: Path, n: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench_{n}.hnsw"
    t0 = time.perf_counter()
    hnsw.save(path)
    saved = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = HnswIndex.load(path, hnsw.dim)
    loaded = time.perf_counter() - t0
    assert again is not None and len(again) == n
    size = path.stat().st_size
    path.unlink()
    row = {"engine": "hnswlib persisted index", "n": n, "save_s": round(saved, 2), "reopen_s": round(loaded, 2)}
    row["file_mb"] = round(size / 2**20)
    print(f"  persisted: save {saved:.1f} s, reopen {loaded:.2f} s, {size / 2**20:.0f} MiB")
    return row


def print_row(row: dict[str, Any]) -> None:
    p95 = " / ".join(f"{row[f'p95_ms@{s:.0%}']:.2f}" for s in SELECTIVITY)
    rec = " / ".join(f"{row[f'recall@{s:.0%}']:.3f}" for s in SELECTIVITY)
    print(f"| {row['engine']} | {row['n']:,} | {p95} | {rec} | {row['build_s']} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000")
    p.add_argument("--embedder", choices=("hash", "minilm", "minilm-real"), default="hash")
    p.add_argument("--usearch-max", type=int, default=100_000, help="largest size usearch is built at (0 = never)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ef", default=str(HnswIndex.DEFAULT_EF), help="hnswlib ef at query time (comma list)")
    p.add_argument("--tier", type=float, default=HnswIndex.MIN_VISIBLE, help="visible share from which HNSW is used")
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--sqlite-vec", action="store_true", help="also time sqlite-vec float brute force")
    p.add_argument("--reopen-dir", default="/tmp", help="where the persisted-index reopen test writes ('' = skip)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vector.json"))
    args = p.parse_args(argv)
    rng = np.random.default_rng(11)
    source = VectorSource("minilm" if args.embedder == "minilm-real" else args.embedder)
    tmp = tempfile.TemporaryDirectory(prefix="bench_vector_")
    args.cache = Path(tmp.name)
    print("| engine | entries | p95 ms (100 / 50 / 5 %) | recall@10 (100 / 50 / 5 %) | build s |")
    print("|---|---|---|---|---|")
    rows: list[dict[str, Any]] = []
    for n in sorted(int(s) for s in args.sizes.split(",")):
        rows += run_size(n, args, source, rng)
        report = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "embedder": args.embedder,
            "queries": args.queries,
            "ef": args.ef,
            "note": "one run, engines side by side; 2 shared cores (other jobs running: latencies are noisy)",
            "results": rows,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")  # after each size: a long run keeps its rows
        print(f"wrote {args.out}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

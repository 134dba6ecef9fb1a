#!/usr/bin/env python3
"""Phase Two cost: wall time and peak memory of one round per 100 kept clips (CPU, tiny
Qwen3-VL), for the steering adapter (DPO) and the LoRA (GRPO) variants.

    python benchmarks/bench_phase2.py [--clips 100] [--variants steering lora]

A tiny checkpoint is taught to memorize either of two facts per clip, clips are kept in a
ClipArchive and one task per clip is logged in a real store, then ``run_phase2`` runs as the
tuner would run it. On a lent GPU (``--device cuda``), the same script times the published 8B
size with random weights (``--model qwen3-vl-8b``): steps/s of the steering vector vs the LoRA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "taskmem_ros"))

from taskmem_ros.config import ModelConfig, PolicyConfig, StoreConfig, TaskMemConfig, TrainingConfig  # noqa: E402
from taskmem_ros.llm.tiny import synthetic_clip  # noqa: E402
from taskmem_ros.policy.prompt import clip_messages  # noqa: E402
from taskmem_ros.store import EpisodicStore  # noqa: E402
from taskmem_ros.store.clip_archive import ClipArchive  # noqa: E402
from taskmem_ros.training.phase2 import run_phase2  # noqa: E402
from taskmem_ros.types import PolicyContext  # noqa: E402

PLACES = ["kitchen drawer", "blue cabinet", "garage shelf", "red box", "hall table"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_policy(tmp: Path, n: int, pcfg: PolicyConfig) -> tuple[ModelConfig, list[Any]]:
    from taskmem_ros.llm.tiny import build_tiny_qwen3vl, teach

    clips = [synthetic_clip(i, f"The item {i} is in the {PLACES[i % 5]}. The sign says DOCK {i}.") for i in range(n)]
    model_dir = build_tiny_qwen3vl(tmp / "model", seed=0)
    examples = []
    for i, clip in enumerate(clips[:8]):  # teaching on a few clips is enough for the mixture
        msgs = clip_messages(clip, PolicyContext(), pcfg)
        examples.append(
            (msgs, json.dumps({"entries": [{"kind": "semantic", "text": f"Item {i} is in the {PLACES[i % 5]}."}]}))
        )
        examples.append((msgs, json.dumps({"entries": [{"kind": "episodic", "text": f"The sign says DOCK {i}."}]})))
    teach(model_dir, examples, steps=40)
    return ModelConfig(model_id=str(model_dir), device_map="cpu", dtype="float32", max_pixels=64 * 64), clips


def one_round(variant: str, tmp: Path, mcfg: ModelConfig, pcfg: PolicyConfig, clips: list[Any]) -> dict[str, Any]:
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    engine = TransformersEngine(mcfg)
    work = tmp / variant
    archive = ClipArchive(work / "clips", max_clips=len(clips))
    tcfg = TrainingConfig()
    p2 = tcfg.phase2
    p2.adapter, p2.adapters_dir, p2.max_clips, p2.candidates = variant, str(work / "adapters"), len(clips), 4
    p2.steps = 20 if variant == "steering" else 4  # GRPO steps are whole sample-and-update rounds
    p2.holdout_fraction = 0.2
    tcfg.phase1.max_new_tokens = 40
    cfg = TaskMemConfig(stream="robot", policy=pcfg, model=mcfg)
    with EpisodicStore(StoreConfig(url=f"sqlite:///{work / 'm.db'}", embedder="hash")) as store:
        for i, clip in enumerate(clips):
            archive.save(clip)
            opts = [PLACES[(i + k) % 5] for k in range(4)]
            store.log_task(
                f"Where is item {i}?",
                asked_at_ns=clip.end_ns,
                stream="robot",
                choices=opts,
                answer=opts[0],
                choice_index=0,
                outcome="correct",
            )
        t0 = time.perf_counter()
        result = run_phase2(cfg, tcfg, store=store, archive=archive, engine=engine, window_s=5.0, eval_samples=2)
        wall = time.perf_counter() - t0
    m = result.metrics
    return {
        "variant": variant,
        "clips": len(clips),
        "wall_s": round(wall, 1),
        "wall_s_per_100_clips": round(wall * 100 / len(clips), 1),
        "train_steps": p2.steps,
        "pairs": m.get("pairs"),
        "before_accuracy": m.get("before_accuracy"),
        "after_accuracy": m.get("after_accuracy"),
        "peak_rss_mb": round(peak_mb(), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--variants", nargs="+", default=["steering", "lora"], choices=["steering", "lora"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "phase2.json")
    args = ap.parse_args()
    pcfg = PolicyConfig(backend="qwen3vl", max_new_tokens=40)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mcfg, clips = build_policy(Path(tmp), args.clips, pcfg)
        for variant in args.variants:
            rows.append(one_round(variant, Path(tmp), mcfg, pcfg, clips))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| variant | clips | wall s | s per 100 clips | train steps | accuracy before -> after | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['clips']} | {r['wall_s']} | {r['wall_s_per_100_clips']} | {r['train_steps']} | "
            f"{r['before_accuracy']} -> {r['after_accuracy']} | {r['peak_rss_mb']} |"
        )
    result = {
        "benchmark": "phase2",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": "cpu"},
        "rows": rows,
        "note": "peak RSS is the process high-water mark, cumulative over rows (steering runs first)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

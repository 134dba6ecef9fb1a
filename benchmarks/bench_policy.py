#!/usr/bin/env python3
"""Memorization throughput of the Qwen3-VL policy: clips/s, generated tokens/s, real-time
factor (stream seconds memorized per wall second) and peak memory, by backend, model,
batch size and quantization.

Clips are real footage: 10 s windows of opencv-doc's vtest.avi at 1 keyframe/s. Every
clip generates exactly ``--new-tokens`` tokens (``ignore_eos``), so rows compare the same
work. Backends: ``transformers`` (in-process ``TransformersEngine``) and ``openai``
(``OpenAIEngine`` -> a ``taskmem-serve`` subprocess over HTTP; point ``--endpoint`` at
vLLM to measure a real server instead).

CPU (CI-sized): tiny dense + MoE checkpoints built from the real config classes:
    python benchmarks/bench_policy.py
GPU, published sizes with random weights (no download; bf16):
    python benchmarks/bench_policy.py --models qwen3-vl-30b-a3b qwen3-vl-8b --device cuda \
        --batch-sizes 1 4 --clips 8 --max-pixels 230400
GPU, a real checkpoint, 4-bit:
    python benchmarks/bench_policy.py --models /models/Qwen3-VL-30B-A3B-Instruct --device cuda \
        --quantization none bnb-4bit
Target on one H100: Qwen3-VL-30B-A3B memorizes 10 s clips at >= 3x real time with batch 4.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "taskmem_ros"))

from taskmem_ros.config import EndpointConfig, ModelConfig, PolicyConfig  # noqa: E402
from taskmem_ros.llm.base import ChatEngine  # noqa: E402
from taskmem_ros.llm.tiny import PUBLISHED  # noqa: E402
from taskmem_ros.policy.llm_policy import LLMPolicy  # noqa: E402
from taskmem_ros.types import NS_PER_S, Clip, PolicyContext, VideoFrame  # noqa: E402

CLIP_S = 10


def real_clips(n: int) -> list[Clip]:
    import cv2

    from taskmem_ros.demo_media import find_sample_video

    cap = cv2.VideoCapture(str(find_sample_video("vtest.avi")))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    frames, i = [], 0
    while len(frames) < n * CLIP_S:
        ok, bgr = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the 79 s recording
            continue
        if i % round(fps) == 0:
            frames.append(bgr[:, :, ::-1].copy())
        i += 1
    clips = []
    for c in range(n):
        start = c * CLIP_S * NS_PER_S
        kf = [VideoFrame(start + k * NS_PER_S, frames[c * CLIP_S + k]) for k in range(CLIP_S)]
        clips.append(Clip("bench", c, start, start + CLIP_S * NS_PER_S, keyframes=kf))
    return clips


def build_model(name: str, workdir: Path) -> tuple[str, Any]:
    """(model_id, in-memory model or None). Tiny checkpoints are written and loaded like real
    ones; published sizes get random weights straight on the device (never written to disk);
    anything else is a real checkpoint (hub id or directory)."""
    from taskmem_ros.llm.tiny import build_tiny_qwen3vl, build_tokenizer, published_config

    if name in ("tiny", "tiny-moe"):
        return str(build_tiny_qwen3vl(workdir / name, moe=name == "tiny-moe")), None
    if name not in PUBLISHED:
        return name, None
    import torch
    from transformers import Qwen3VLForConditionalGeneration, Qwen3VLMoeForConditionalGeneration

    tok = build_tokenizer()
    cls = Qwen3VLMoeForConditionalGeneration if PUBLISHED[name]["moe"] else Qwen3VLForConditionalGeneration
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = cls._from_config(published_config(name, tok), dtype=torch.bfloat16)
    return name, (model, tok)


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(engine: ChatEngine, clips: list[Clip], batch: int, new_tokens: int) -> dict[str, Any]:
    policy = LLMPolicy(
        engine, PolicyConfig(backend="qwen3vl", max_new_tokens=new_tokens, batch_size=batch), release=False
    )
    warm = policy.requests(clips[:batch], [PolicyContext()] * batch)
    for r in warm:
        r.ignore_eos = True
    engine.generate(warm)  # warm-up (kernels, allocator, connection pool)
    tokens = 0
    t0 = time.perf_counter()
    for i in range(0, len(clips), batch):
        chunk = clips[i : i + batch]
        reqs = policy.requests(chunk, [PolicyContext()] * len(chunk))
        for r in reqs:
            r.ignore_eos = True  # every clip costs exactly new_tokens
        gens = engine.generate(reqs)
        errors = [g.error for g in gens if g.finish_reason == "error"]
        if errors:
            raise RuntimeError(errors[0])
        tokens += sum(g.completion_tokens for g in gens)
    wall = time.perf_counter() - t0
    return {
        "clips": len(clips),
        "wall_s": round(wall, 3),
        "clips_per_s": round(len(clips) / wall, 3),
        "gen_tokens_per_s": round(tokens / wall, 1),
        "real_time_factor": round(len(clips) * CLIP_S / wall, 2),
    }


def serve(model_dir: str, args: argparse.Namespace, batch: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        "-m",
        "taskmem_ros.llm.server",
        "--model",
        model_dir,
        "--port",
        "0",
        "--device-map",
        args.device_map,
        "--max-pixels",
        str(args.max_pixels),
        "--max-batch",
        str(batch),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening on" in line:
            return proc, line.rsplit(" ", 1)[1].strip()
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("taskmem-serve did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models",
        nargs="+",
        default=["tiny", "tiny-moe"],
        help="tiny, tiny-moe, qwen3-vl-30b-a3b, qwen3-vl-8b (random weights) or a checkpoint",
    )
    ap.add_argument("--backends", nargs="+", default=["transformers", "openai"], choices=["transformers", "openai"])
    ap.add_argument("--endpoint", default="", help="measure this OpenAI-compatible server instead of taskmem-serve")
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4])
    ap.add_argument("--quantization", nargs="+", default=["none"], choices=["none", "bnb-4bit", "bnb-8bit", "fp8"])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--max-pixels", type=int, default=320 * 240)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "policy.json")
    args = ap.parse_args()
    args.device_map = "cpu" if args.device == "cpu" else "cuda"
    clips = real_clips(args.clips)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model_dir, loaded = build_model(name, Path(tmp))
            for quant in args.quantization:
                for backend in args.backends:
                    for batch in args.batch_sizes:
                        row: dict[str, Any] = {"model": name, "backend": backend, "quantization": quant, "batch": batch}
                        proc = None
                        try:
                            if backend == "transformers":
                                from taskmem_ros.llm.transformers_engine import TransformersEngine

                                cfg = ModelConfig(
                                    model_id=model_dir,
                                    device_map=args.device_map,
                                    max_pixels=args.max_pixels,
                                    quantization=quant,
                                )
                                if loaded is not None and quant != "none":
                                    raise RuntimeError(
                                        "quantized rows need a checkpoint (--models DIR), not random weights"
                                    )
                                engine: ChatEngine = (
                                    TransformersEngine(cfg, model=loaded[0], tokenizer=loaded[1])
                                    if loaded is not None
                                    else TransformersEngine(cfg)
                                )
                            else:
                                if quant != "none" or (loaded is not None and not args.endpoint):
                                    continue  # quantization is the server's setting; random weights stay in-process
                                from taskmem_ros.llm.openai_engine import OpenAIEngine

                                url = args.endpoint
                                if not url:
                                    proc, url = serve(model_dir, args, batch)
                                engine = OpenAIEngine(
                                    EndpointConfig(
                                        base_url=url,
                                        model=model_dir if not args.endpoint else name,
                                        max_concurrency=batch,
                                        structured_output=False,
                                    )
                                )
                            row.update(run_case(engine, clips, batch, args.new_tokens))
                            engine.close()
                        except Exception as exc:  # one failing case (e.g. 4-bit on CPU) must not hide the others
                            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
                        finally:
                            if proc is not None:
                                proc.terminate()
                                proc.wait(30)
                        row["peak_mem_mb"] = round(peak_memory_mb(args.device), 1)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    header = ("model", "backend", "quant", "batch", "clips/s", "gen tok/s", "RTF (x real time)", "peak MB")
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        vals = (
            r["model"],
            r["backend"],
            r["quantization"],
            r["batch"],
            r.get("clips_per_s", "-"),
            r.get("gen_tokens_per_s", "-"),
            r.get("real_time_factor", r.get("error", "-")),
            r["peak_mem_mb"],
        )
        print("| " + " | ".join(str(v) for v in vals) + " |")
    result = {
        "benchmark": "policy",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": args.device},
        "settings": {
            "clip_seconds": CLIP_S,
            "keyframes_per_clip": CLIP_S,
            "new_tokens": args.new_tokens,
            "max_pixels": args.max_pixels,
            "clips": args.clips,
        },
        "rows": rows,
        "note": "peak_mem_mb is the process high-water mark (RSS on CPU, CUDA allocator on GPU), cumulative over rows",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

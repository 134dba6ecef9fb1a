"""``run_ci``: the synthetic CPU benchmark end to end (``taskmem-eval ci``, the streaming CPU
benchmark script, the runner test)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from taskmem_ros.config import TaskMemConfig
from taskmem_ros.store.engine import db_url


def run_ci(data_dir: str | Path, out_dir: str | Path, *, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """The CPU benchmark: build the synthetic streams from packaged footage (if not built yet),
    replay all three through the CPU baseline (perception policy + retrieval answerer), report.
    Dataset names get a ``-synthetic`` suffix so nobody reads them next to the paper's rows."""
    from taskmem_ros.evaluation.datasets import load_egolife, load_egotempo, load_videomme
    from taskmem_ros.evaluation.report import write_report
    from taskmem_ros.evaluation.runner import RunOptions, StreamingRunner
    from taskmem_ros.evaluation.synthetic import build_synthetic_benchmark
    from taskmem_ros.store import EpisodicStore

    data = Path(data_dir)
    if not (data / "manifest.json").is_file():
        build_synthetic_benchmark(data, seed=seed, scale="ci")
    bench = {
        "videomme": load_videomme(data / "videomme"),
        "egolife": load_egolife(data / "egolife"),
        "egotempo": load_egotempo(data / "egotempo" / "egotempo_openQA.json", data / "egotempo" / "videos"),
    }
    cfg = TaskMemConfig()
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, url=db_url(str(data / "eval.db"))))
    run = f"cpu-baseline-seed{seed}"
    results: dict[str, Any] = {}
    with EpisodicStore(cfg.store) as store:
        runner = StreamingRunner(cfg, store, RunOptions(run=run, seed=seed, progress=progress))
        try:
            for name, dataset in bench.items():
                dataset.name = f"{name}-synthetic"
                results[dataset.name] = runner.run(dataset)
        finally:
            runner.policy.close()
    settings = {
        "run": run,
        "seed": seed,
        "policy": cfg.policy.backend,
        "answer": cfg.answer.backend,
        "data": "synthetic CPU benchmark (taskmem-eval synthetic): packaged footage + espeak-ng speech",
    }
    reports = {d.name: d.media_report() for d in bench.values()}
    write_report(out_dir, run_name=run, results_by_dataset=results, settings=settings, media_reports=reports)
    return results

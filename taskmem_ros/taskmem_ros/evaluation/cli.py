"""``taskmem-eval``: replay VideoMME / EgoLife / EgoTempo as streams and score memory-only answers.

    taskmem-eval run --dataset videomme --root /data/Video-MME --db eval.db --run qwen3vl-base \\
        --params config/qwen3vl_onboard.yaml --out reports/qwen3vl-base
    taskmem-eval run --dataset egotempo --qa-file egotempo_openQA.json --video-dir /data/ego4d/clips ...
    taskmem-eval report --db eval.db --run qwen3vl-base --out reports/qwen3vl-base
    taskmem-eval synthetic /tmp/bench          # the small benchmark built from packaged footage
    taskmem-eval ci /tmp/bench --out benchmarks/results/streaming_cpu     # build + run all three + report

Runs are resumable: run the same command again and finished streams are skipped.
Exit codes: 0 done, 1 nothing evaluated (no readable media / questions), 2 bad arguments /
unreadable data.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from taskmem_ros.config import ConfigError, TaskMemConfig, load_config
from taskmem_ros.evaluation.datasets.egotempo import DEFAULT_EGOTEMPO_QA
from taskmem_ros.store.engine import db_url

log = logging.getLogger("taskmem-eval")

DATASETS = ("videomme", "egolife", "egotempo")


def _config(args: argparse.Namespace) -> TaskMemConfig:
    cfg = load_config(args.params, "memorizer") if args.params else TaskMemConfig()
    return dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, url=db_url(args.db)))


def _judge(name: str, cfg: TaskMemConfig) -> Any:
    from taskmem_ros.evaluation.judge import ANLSJudge, LLMJudge

    if name == "anls":
        return ANLSJudge()
    from taskmem_ros.llm import make_engine

    return LLMJudge(make_engine(cfg, "qwen3vl" if name == "model" else "openai"))


def load(args: argparse.Namespace) -> Any:
    from taskmem_ros.evaluation.datasets import load_egolife, load_egotempo, load_videomme

    if args.dataset == "videomme":
        return load_videomme(args.root, limit=args.limit)
    if args.dataset == "egolife":
        return load_egolife(args.root, qa_file=args.qa_file, limit=args.limit)
    qa = args.qa_file or DEFAULT_EGOTEMPO_QA
    return load_egotempo(qa, args.video_dir or args.root, limit=args.limit)


def cmd_run(args: argparse.Namespace) -> int:
    from taskmem_ros.evaluation.report import write_report
    from taskmem_ros.evaluation.runner import RunOptions, StreamingRunner
    from taskmem_ros.store import EpisodicStore

    cfg = _config(args)
    dataset = load(args)
    print(dataset.media_report(), flush=True)
    opts = RunOptions(
        run=args.run,
        seed=args.seed,
        task_log=args.task_log,
        progress=not args.no_progress,
        max_streams=args.max_streams,
    )
    if not dataset.questions or not dataset.media:
        print(
            f"taskmem-eval: nothing to evaluate: {len(dataset.questions)} questions, {len(dataset.media)} readable "
            "media files (see the media report above)",
            file=sys.stderr,
        )
        return 1
    with EpisodicStore(cfg.store) as store:
        runner = StreamingRunner(cfg, store, opts, judge=_judge(args.judge, cfg), judge_name=args.judge)
        runner.run(dataset)
        results = {name: runner.results(name) for name in DATASETS if runner.results(name)}
        results.setdefault(dataset.name, runner.results(dataset.name))
        settings = {"run": args.run, "seed": args.seed, "policy": cfg.policy.backend, "answer": cfg.answer.backend}
        if args.out:
            reports = {dataset.name: dataset.media_report()}
            paths = write_report(
                args.out, run_name=args.run, results_by_dataset=results, settings=settings, media_reports=reports
            )
            print(f"report: {paths['markdown']}")
    _print_summary(results)
    if not any(results.values()):
        print("taskmem-eval: no question was evaluated", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.evaluation.report import write_report
    from taskmem_ros.evaluation.types import EvalResult
    from taskmem_ros.store import EpisodicStore

    with EpisodicStore(StoreConfig(url=db_url(args.db))) as store:
        run_id = store.eval_run_id(args.run)
        if run_id is None:
            print(f"taskmem-eval: no run {args.run!r} in {args.db}; runs: {store.eval_run_names()}", file=sys.stderr)
            return 2
        results: dict[str, list[EvalResult]] = {}
        for row in store.eval_answers(run_id):
            results.setdefault(row["dataset"], []).append(EvalResult(**row))
    paths = write_report(args.out, run_name=args.run, results_by_dataset=results, settings={"run": args.run})
    print(f"report: {paths['markdown']}")
    _print_summary(results)
    return 0


def cmd_ci(args: argparse.Namespace) -> int:
    from taskmem_ros.evaluation.ci import run_ci

    results = run_ci(args.data_dir, args.out, seed=args.seed, progress=not args.no_progress)
    print(f"report: {Path(args.out) / 'report.md'}")
    _print_summary(results)
    return 0


def cmd_synthetic(args: argparse.Namespace) -> int:
    from taskmem_ros.evaluation.synthetic import build_synthetic_benchmark

    bench = build_synthetic_benchmark(args.out_dir, seed=args.seed, scale=args.scale)
    print(f"synthetic benchmark written to {args.out_dir}: {bench}")
    return 0


def _print_summary(results: dict[str, list[Any]]) -> None:
    from taskmem_ros.evaluation.metrics import score

    for name, rows in results.items():
        s = score(rows)
        print(
            f"{name}: Accuracy {s.accuracy:.3f} = Coverage {s.coverage:.3f} x Precision {s.precision:.3f} "
            f"({s.correct}/{s.n} correct, {s.answered} answered)"
        )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="taskmem-eval", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="replay a benchmark as streams and answer from memory")
    run.add_argument("--dataset", required=True, choices=DATASETS)
    run.add_argument("--root", help="dataset root (VideoMME: has videomme/, data/, subtitle/; EgoLife: identity dirs)")
    run.add_argument("--qa-file", help="EgoLifeQA json / EgoTempo json (EgoTempo default: the shared copy)")
    run.add_argument("--video-dir", help="EgoTempo: directory of {clip_id}.mp4 or full {ego4d_uid}.mp4")
    run.add_argument("--db", required=True, help="SQLite file (memory + run state) or SQLAlchemy URL")
    run.add_argument("--run", required=True, help="run name; the same name resumes")
    run.add_argument("--params", help="ROS 2 params file with the policy/answer/model settings")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--limit", type=int, help="at most this many questions (first streams first)")
    run.add_argument("--max-streams", type=int)
    run.add_argument(
        "--task-log",
        default="eval",
        choices=("eval", "train", "none"),
        help="log questions as tasks flagged is_eval (default), as training tasks, or not",
    )
    run.add_argument(
        "--judge",
        default="anls",
        choices=("anls", "model", "endpoint"),
        help="open-ended answers: ANLS >= 0.5 (no model), the local model, or endpoint.*",
    )
    run.add_argument("--out", help="write report.json / report.md / plots here")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(fn=cmd_run)
    rep = sub.add_parser("report", help="write the report of a (finished or partial) run")
    rep.add_argument("--db", required=True)
    rep.add_argument("--run", required=True)
    rep.add_argument("--out", required=True)
    rep.set_defaults(fn=cmd_report)
    syn = sub.add_parser("synthetic", help="build the small benchmark from packaged footage")
    syn.add_argument("out_dir")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--scale", default="ci", choices=("ci", "full"))
    syn.set_defaults(fn=cmd_synthetic)
    ci = sub.add_parser("ci", help="build the synthetic benchmark and run the CPU baseline on it")
    ci.add_argument("data_dir")
    ci.add_argument("--out", required=True)
    ci.add_argument("--seed", type=int, default=0)
    ci.add_argument("--no-progress", action="store_true")
    ci.set_defaults(fn=cmd_ci)
    return ap


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.cmd == "run" and args.dataset != "egotempo" and not args.root:
        print(f"taskmem-eval: --root is required for {args.dataset}", file=sys.stderr)
        return 2
    if args.cmd == "run" and args.dataset == "egotempo" and not (args.video_dir or args.root):
        print(
            "taskmem-eval: --video-dir (or --root) is required for egotempo: the directory of the Ego4D "
            "clips ({clip_id}.mp4) or full videos ({ego4d_uid}.mp4); the annotations default to the shipped "
            f"{DEFAULT_EGOTEMPO_QA.name}",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.fn(args))
    except (ConfigError, ValueError, OSError) as exc:
        print(f"taskmem-eval: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

"""taskmem-train: offboard training from the command line (and the tuner node's worker process).

    taskmem-train phase2 --params offboard.yaml [--db URL_or_path] [--stream NAME]
                         [--clips-dir DIR] [--adapters-dir DIR] [--json-progress]
    taskmem-train phase1 --params offboard.yaml [--model DIR] --clips-dir DIR --output-dir DIR [--steps N]

The params file is a ROS 2 params file; the ``tuner`` node's section (over ``/**``) is read and
mapped onto both ``TaskMemConfig`` and ``TrainingConfig``; other node-level keys
(``every_n_tasks``, ``autostart``...) are ignored here.

With ``--json-progress`` stdout carries only JSON objects, one per line (anything else a library
prints goes to stderr)::

    {"event": "progress", "stage": "...", "fraction": 0.25, ...info}
    {"event": "done", "adapter_id": "...", "path": "...", "sha256": "...", "metrics": {...}, "registered": true}
    {"event": "skipped", "message": "..."}      # too few logged tasks
    {"event": "error", "message": "..."}

Exit status: 0 done, 1 failure, 2 bad input (params, paths, store), 3 skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from taskmem_ros.config import (
    ConfigError,
    TaskMemConfig,
    TrainingConfig,
    from_flat,
    read_params_file,
)
from taskmem_ros.store.engine import db_url

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_SKIPPED = 0, 1, 2, 3
NODE_NAME = "tuner"

_TASKMEM_SECTIONS = frozenset(f.name for f in dataclasses.fields(TaskMemConfig))
_TRAINING_SECTIONS = frozenset(f.name for f in dataclasses.fields(TrainingConfig))

log = logging.getLogger("taskmem_ros.training.cli")


class BadInput(Exception):
    """A user error: reported in one line, exit status 2."""


def load_training_params(path: str | Path, node: str = NODE_NAME) -> tuple[TaskMemConfig, TrainingConfig]:
    """Both configs from one params file. A key whose first segment names a section of either
    config must be valid there (typos are errors); other keys are node-level and ignored."""
    flat = read_params_file(path, node)
    mem = {k: v for k, v in flat.items() if k.split(".", 1)[0] in _TASKMEM_SECTIONS}
    train = {k: v for k, v in flat.items() if k.split(".", 1)[0] in _TRAINING_SECTIONS}
    return from_flat(TaskMemConfig, mem), from_flat(TrainingConfig, train)


class Reporter:
    """Progress and results: JSON lines on ``out`` (``--json-progress``) or readable lines on stderr."""

    def __init__(self, json_mode: bool, out: IO[str] | None = None) -> None:
        self.json_mode = json_mode
        self.out = out if out is not None else sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        if self.json_mode:
            self.out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
            self.out.flush()
            return
        if event == "progress":
            extra = {k: v for k, v in fields.items() if k not in ("stage", "fraction")}
            tail = f" {json.dumps(extra, default=str)}" if extra else ""
            pct = 100 * float(fields.get("fraction", 0.0))
            print(f"[{pct:5.1f}%] {fields.get('stage', '')}{tail}", file=sys.stderr)
        elif event == "done":
            print(json.dumps(fields, indent=2, default=str), file=self.out, flush=True)
        else:
            print(f"taskmem-train: {event}: {fields.get('message', '')}", file=sys.stderr, flush=True)

    def progress(self, stage: str, fraction: float, info: dict[str, Any] | None = None) -> None:
        extra = {k: v for k, v in (info or {}).items() if k not in ("event", "stage", "fraction")}
        self.emit("progress", stage=str(stage), fraction=round(float(fraction), 4), **extra)


def _json_stdout() -> IO[str]:
    """Keep fd 1 for our JSON lines only: whatever else writes to stdout (libraries, C code)
    goes to stderr from here on."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _open_store(cfg: TaskMemConfig) -> Any:
    from taskmem_ros.store import EpisodicStore, StoreError

    store = EpisodicStore(cfg.store)
    path = store.path
    local = cfg.store.url.startswith("sqlite") and path and path != ":memory:" and not path.startswith("file:")
    if local and not Path(path).expanduser().is_file():  # never train on a freshly created, empty store
        raise BadInput(f"store {cfg.store.url!r}: no such database file")
    try:
        return store.open()
    except (StoreError, ValueError, OSError) as exc:
        raise BadInput(f"cannot open store {cfg.store.url!r}: {exc}") from exc


def _archive(cfg: TaskMemConfig, clips_dir: str | None) -> Any:
    from taskmem_ros.store.clip_archive import ClipArchive

    root = clips_dir or cfg.ingest.keep_clips_dir
    if not root:
        raise BadInput("no clips directory: set ingest.keep_clips_dir in the params file or pass --clips-dir")
    if not Path(root).expanduser().is_dir():
        raise BadInput(f"clips directory {root!r} does not exist")
    return ClipArchive(Path(root).expanduser(), max_clips=cfg.ingest.keep_clips_max)


def _load(args: argparse.Namespace) -> tuple[TaskMemConfig, TrainingConfig]:
    if not Path(args.params).is_file():
        raise BadInput(f"params file {args.params!r} does not exist")
    cfg, tcfg = load_training_params(args.params)
    if getattr(args, "db", None):
        cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, url=db_url(args.db)))
    return cfg, tcfg


def cmd_phase2(args: argparse.Namespace, rep: Reporter) -> int:
    cfg, tcfg = _load(args)
    if args.adapters_dir:
        tcfg = dataclasses.replace(tcfg, phase2=dataclasses.replace(tcfg.phase2, adapters_dir=args.adapters_dir))
    archive = _archive(cfg, args.clips_dir)
    try:
        from taskmem_ros.training.phase2 import Phase2Skipped, run_phase2
    except ImportError as exc:
        rep.emit("error", message=f"Phase Two is not available: {exc}")
        return EXIT_FAILURE
    store = _open_store(cfg)
    try:
        rep.progress("start", 0.0, {"clips_dir": str(archive.root)})
        try:
            result = run_phase2(cfg, tcfg, store=store, archive=archive, stream=args.stream, progress=rep.progress)
        except Phase2Skipped as exc:
            rep.emit("skipped", message=str(exc))
            return EXIT_SKIPPED
    finally:
        store.close()
    rep.emit(
        "done",
        adapter_id=result.adapter_id,
        path=str(result.path),
        sha256=result.sha256,
        metrics=result.metrics,
        registered=bool(result.registered),
    )
    return EXIT_OK


def cmd_phase1(args: argparse.Namespace, rep: Reporter) -> int:
    cfg, tcfg = _load(args)
    if args.steps is not None and args.steps < 1:
        raise BadInput(f"--steps={args.steps} is invalid; expected >= 1")
    if args.max_minutes is not None:  # checked by Phase1Config (a ConfigError exits 2 like BadInput)
        tcfg.phase1 = dataclasses.replace(tcfg.phase1, max_minutes=args.max_minutes)
    archive = _archive(cfg, args.clips_dir)
    try:
        from taskmem_ros.training.phase1 import build_phase1_dataset, run_phase1
    except ImportError as exc:
        rep.emit("error", message=f"Phase One is not available: {exc}")
        return EXIT_FAILURE
    from taskmem_ros.store import make_embedder

    clips = archive.recent(args.stream, limit=cfg.ingest.keep_clips_max)
    if not clips:
        raise BadInput(f"no kept clips under {str(archive.root)!r}")
    rep.progress("dataset", 0.0, {"clips": len(clips)})
    dataset = build_phase1_dataset(clips, policy_cfg=cfg.policy)
    embedder = make_embedder(cfg.store.embedder, cfg.store.embedding_dim)
    override = None
    if args.judge_fidelity:  # no reference captions: a judge model looks at the frames instead
        from taskmem_ros.llm import make_engine
        from taskmem_ros.training.rewards import combined_reward, make_judge_fidelity_reward

        judge = make_judge_fidelity_reward(make_engine(cfg, args.judge_fidelity), clips)
        terms = [
            (judge if fn.__name__ == "fidelity_reward" else fn, w) for fn, w in combined_reward(tcfg.rewards, embedder)
        ]
        override = ([fn for fn, _ in terms], [w for _, w in terms])
    rep.progress("train", 0.05, {"steps": args.steps or tcfg.phase1.steps})
    # --model: a checkpoint directory / hub id; default: the params file's model.* (e.g. SmolLM2's GGUF)
    result = run_phase1(
        args.model or cfg.model,
        tcfg,
        dataset,
        output_dir=args.output_dir,
        embedder=embedder,
        max_steps=args.steps,
        reward_override=override,
    )
    rep.emit(
        "done",
        output_dir=str(result.output_dir),
        adapter_dir=str(result.adapter_dir) if result.adapter_dir else "",
        model_dir=str(result.model_dir) if result.model_dir else "",
        metrics=result.metrics,
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskmem-train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p2 = sub.add_parser("phase2", help="tune a Phase Two adapter from the logged tasks and kept clips")
    p2.add_argument("--params", required=True, help="ROS 2 params file (node 'tuner'), e.g. config/offboard.yaml")
    p2.add_argument("--db", help="override store.url: sqlite:///PATH, a bare PATH, or any SQLAlchemy URL")
    p2.add_argument("--stream", help="train on this stream's tasks and clips (default: the config's)")
    p2.add_argument("--clips-dir", help="kept clips (default: ingest.keep_clips_dir)")
    p2.add_argument("--adapters-dir", help="write the adapter here (default: phase2.adapters_dir)")
    p2.add_argument("--json-progress", action="store_true", help="JSON lines on stdout (for the tuner node)")
    p1 = sub.add_parser("phase1", help="GRPO on memory quality (how to memorize)")
    p1.add_argument("--params", required=True, help="ROS 2 params file (node 'tuner')")
    p1.add_argument("--model", help="base checkpoint directory (or hub id); default: the params file's model.*")
    p1.add_argument(
        "--judge-fidelity",
        choices=("qwen3vl", "openai"),
        help="score fidelity with a judge model that sees the frames (model.* or endpoint.*) instead of the transcript",
    )
    p1.add_argument("--clips-dir", required=True, help="kept clips to train on")
    p1.add_argument("--output-dir", required=True, help="where the tuned weights / LoRA go")
    p1.add_argument("--steps", type=int, help="override phase1.steps")
    p1.add_argument("--max-minutes", type=float, help="override phase1.max_minutes (wall-clock budget; 0 = none)")
    p1.add_argument("--stream", help="only this stream's kept clips (default: all)")
    p1.add_argument("--json-progress", action="store_true", help="JSON lines on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    rep = Reporter(args.json_progress, _json_stdout() if args.json_progress else None)
    commands = {"phase1": cmd_phase1, "phase2": cmd_phase2}
    try:
        return commands[args.command](args, rep)
    except (BadInput, ConfigError) as exc:
        rep.emit("error", message=str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        rep.emit("error", message="interrupted")
        return 130
    except (ValueError, OSError, RuntimeError, ImportError) as exc:  # StoreError, AdapterError, EngineError...
        rep.emit("error", message=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    except Exception as exc:  # a bug: keep the traceback for the log, still one JSON line
        traceback.print_exc(file=sys.stderr)
        rep.emit("error", message=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

"""Phase Two supervision for the tuner (ROS-free): when a round is due, the training process,
its JSON progress lines, and the outcome.

A round runs ``TunerParams.train_command`` (default ``taskmem-train phase2 --json-progress``) as
its own process with the node's parameters in a temporary params file, so a crash or an OOM in
training never takes the tuner down, and Ctrl-C on the tuner is forwarded as SIGTERM to the whole
process group. ``on_event`` receives every progress object; ``on_finished`` the :class:`RunResult`
(the node delivers the adapter there, then the run counts as finished).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taskmem_ros.config import TaskMemConfig, TrainingConfig, nest, to_flat
from taskmem_ros.node_config import TunerParams
from taskmem_ros.store import EpisodicStore, StoreError

log = logging.getLogger(__name__)
EXIT_SKIPPED = 3  # taskmem-train: nothing to learn from (too few tasks or clips)
FINAL_EVENTS = ("done", "skipped", "error")


@dataclass
class RunResult:
    """How one round ended; the node fills the delivery fields (``delivery_message`` set = tried)."""

    outcome: str  # "done" | "skipped" | "error" | "cancelled"
    message: str = ""
    returncode: int | None = None
    adapter: dict[str, Any] = field(default_factory=dict)  # adapter_id, path, sha256, kind, base_model
    metrics: dict[str, Any] = field(default_factory=dict)
    delivered: bool = False
    delivery_message: str = ""
    active_adapter_id: str = ""


@dataclass
class TrainingRun:
    """One training process: stderr tail, latest progress, final event, and when it is over."""

    proc: subprocess.Popen[str]
    params_path: str
    started_count: int
    reason: str
    deliver: bool | None = None  # None: TunerParams.deliver decides
    listener: Callable[[dict[str, Any]], None] | None = None  # this run's events too (an action goal)
    stage: str = "started"
    fraction: float = 0.0
    final: dict[str, Any] | None = None
    cancelled: bool = False
    result: RunResult | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=40))


def numeric_metrics(metrics: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Nested metrics (``{"before": {"accuracy": 0.4}}``) as ``("before.accuracy", 0.4)`` pairs."""
    out: list[tuple[str, float]] = []
    if isinstance(metrics, dict):
        for k, v in metrics.items():
            out.extend(numeric_metrics(v, f"{prefix}{k}."))
    elif isinstance(metrics, (int, float)) and not isinstance(metrics, bool):
        out.append((prefix.rstrip("."), float(metrics)))
    return out


def feedback_fields(event: dict[str, Any]) -> dict[str, Any]:
    """A progress object as typed feedback fields (NaN/-1 where the stage reports none)."""

    def num(key: str) -> float:
        v = event.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan

    step = event.get("step")
    return {
        "stage": str(event.get("stage") or event.get("event", "")),
        "fraction": 0.0 if math.isnan(num("fraction")) else num("fraction"),
        "step": int(step) if isinstance(step, int) and not isinstance(step, bool) else -1,
        "loss": num("loss"),
        "reward": num("reward"),
        "message": str(event.get("message", "")),
    }


class Phase2Supervisor:
    """Counts tasks, decides when a round is due, runs and follows the training process."""

    def __init__(
        self,
        params: TunerParams,
        cfg: TaskMemConfig,
        tcfg: TrainingConfig,
        store: EpisodicStore,
        on_event: Callable[[dict[str, Any]], None],
        on_finished: Callable[[TrainingRun, RunResult], None],
        on_idle: Callable[[], None] = lambda: None,
    ) -> None:
        self.params, self.cfg, self.tcfg, self.store = params, cfg, tcfg, store
        self.on_event, self.on_finished, self.on_idle = on_event, on_finished, on_idle
        self.run: TrainingRun | None = None
        self.runs = 0
        self.last: RunResult | None = None
        self._lock = threading.Lock()
        self.baseline = self.covered_count()  # task count covered by the last adapter / run

    # -- when a round is due ----------------------------------------------------------------
    def task_count(self) -> int:
        return len(self.store.tasks(is_eval=False))

    def covered_count(self) -> int:
        """Tasks logged up to the newest registered adapter: what it was trained on."""
        adapters = self.store.adapters()
        if not adapters:
            return 0
        newest = max(a.created_ns for a in adapters)
        return sum(1 for t in self.store.tasks(is_eval=False) if t.created_ns <= newest)

    def due(self) -> bool:
        """``every_n_tasks`` new non-evaluation tasks since the last adapter, and nothing running."""
        n = self.params.every_n_tasks
        if n <= 0 or self.running:
            return False
        try:
            return self.task_count() - self.baseline >= n
        except StoreError as exc:
            log.warning("cannot count tasks: %s", exc)
            return False

    # -- the training process ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.run is not None

    def start(
        self,
        reason: str = "request",
        deliver: bool | None = None,
        listener: Callable[[dict[str, Any]], None] | None = None,
    ) -> TrainingRun | str:
        """The new run, or why none started ("already running", "failed to start: ...")."""
        with self._lock:
            if self.run is not None:
                return "already running"
            try:
                count = self.task_count()
            except StoreError as exc:
                log.warning("cannot count tasks before the run: %s", exc)
                count = self.baseline
            params = self._params_file()
            cmd = [*self.params.train_command, "--params", params]
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    bufsize=1,
                    env=dict(os.environ, PYTHONUNBUFFERED="1"),
                    start_new_session=True,  # Ctrl-C on the node is ours to forward (terminate)
                )
            except OSError as exc:
                Path(params).unlink(missing_ok=True)
                log.error("cannot start %r: %s", cmd[0], exc)
                self.on_event({"event": "error", "message": f"cannot start training: {exc}"})
                return f"failed to start: {exc}"
            run = self.run = TrainingRun(proc, params, count, reason, deliver, listener)
            self.runs += 1
        log.info("Phase Two started (%s): pid %d: %s", reason, proc.pid, " ".join(cmd))
        self.emit(run, {"event": "started", "stage": "started", "reason": reason, "pid": proc.pid, "tasks": count})
        threading.Thread(target=self._read_stderr, args=(run,), daemon=True, name="tuner-stderr").start()
        threading.Thread(target=self._follow, args=(run,), daemon=True, name="tuner-train").start()
        return run

    def emit(self, run: TrainingRun, event: dict[str, Any]) -> None:
        self.on_event(event)
        if run.listener is not None:
            run.listener(event)

    def _params_file(self) -> str:
        nested = nest({**to_flat(self.cfg), **to_flat(self.tcfg)})
        fd, path = tempfile.mkstemp(prefix="taskmem-tuner-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump({"tuner": {"ros__parameters": nested}}, f, sort_keys=False)
        return path

    def _read_stderr(self, run: TrainingRun) -> None:
        assert run.proc.stderr is not None
        for line in run.proc.stderr:
            if line := line.rstrip():
                run.stderr_tail.append(line)
                log.debug("train: %s", line)

    def _follow(self, run: TrainingRun) -> None:
        """Background thread: forward progress, then settle the outcome."""
        assert run.proc.stdout is not None
        for line in run.proc.stdout:
            if not (line := line.strip()):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                log.info("train: %s", line)  # a library printing to stdout: not progress
                continue
            if not isinstance(event, dict):
                continue
            if event.get("event") == "progress":
                run.stage, run.fraction = str(event.get("stage", run.stage)), float(event.get("fraction") or 0.0)
            if event.get("event") in FINAL_EVENTS:
                run.final = event
            self.emit(run, event)
        rc = run.proc.wait()
        Path(run.params_path).unlink(missing_ok=True)
        result = self._outcome(run, rc)
        if result.outcome == "done":
            self.baseline = max(self.baseline, run.started_count)
        run.result = result  # state "delivering" while on_finished runs
        try:
            self.on_finished(run, result)
        finally:
            self.last = result
            with self._lock:
                self.run = None
            run.finished.set()
            self.on_idle()

    def _outcome(self, run: TrainingRun, rc: int) -> RunResult:
        final = run.final or {}
        kind = final.get("event")
        if run.cancelled:
            return RunResult("cancelled", "cancelled on request", rc)
        if rc == 0 and kind == "done":
            adapter = {k: str(final.get(k, "")) for k in ("adapter_id", "path", "sha256")}
            with contextlib.suppress(Exception):  # metadata is a nicety; the robot verifies the file itself
                from taskmem_ros.adapters import read_adapter

                meta = read_adapter(adapter["path"])
                adapter.update(kind=meta.kind, base_model=meta.base_model)
            log.info("Phase Two done: adapter %r at %s", adapter["adapter_id"], adapter["path"])
            return RunResult("done", "", rc, adapter, dict(final.get("metrics") or {}))
        if kind == "skipped" or rc == EXIT_SKIPPED:
            log.info("Phase Two skipped: %s", final.get("message", ""))
            return RunResult("skipped", str(final.get("message", "")), rc)
        tail = " | ".join(list(run.stderr_tail)[-5:])
        message = str(final.get("message") or f"training exited with status {rc}: {tail}")
        log.error("Phase Two failed (exit %s): %s", rc, message)
        if kind != "error":  # the process died without saying why: say it for it
            self.emit(run, {"event": "error", "returncode": rc, "message": message})
        return RunResult("error", message, rc)

    def terminate(self, cancelled: bool = False) -> None:
        """SIGTERM the process group, SIGKILL after ``terminate_timeout_s``."""
        run = self.run
        if run is None or run.proc.poll() is not None:
            return
        run.cancelled = run.cancelled or cancelled
        log.warning("terminating the training process (pid %d)", run.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signal.SIGTERM)
        try:
            run.proc.wait(self.params.terminate_timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(5.0)

    def status(self) -> dict[str, Any]:
        """Plain data for TunerStatus and diagnostics."""
        try:
            tasks = self.task_count()
        except StoreError:
            tasks = -1
        run, last = self.run, self.last
        return {
            "state": "idle" if run is None else ("delivering" if run.result is not None else "training"),
            "stage": run.stage if run is not None else "",
            "fraction": run.fraction if run is not None else 0.0,
            "runs": self.runs,
            "tasks": tasks,
            "tasks_covered": self.baseline,
            "every_n_tasks": self.params.every_n_tasks,
            "last": last,
        }

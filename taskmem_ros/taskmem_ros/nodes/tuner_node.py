"""Tuner lifecycle node (offboard machine): Phase Two on the logged tasks, then hand the adapter
to the robot.

Every ``poll_s`` it counts the non-evaluation tasks in the store (the robot's or the fleet's);
once ``every_n_tasks`` new ones have been logged since the last adapter (or on ``~/run_phase2``)
it runs ``train_command`` (default ``taskmem-train phase2 --json-progress``) as a separate
process with this node's parameters written to a temporary params file, republishes its JSON
progress lines on ``~/progress``, publishes the result on ``~/adapter`` (latched) and, with
``deliver``, calls the robot's LoadAdapter asynchronously. The robot verifies the adapter and
rolls back itself; its reply (accepted or refused, and why) is published and logged.

configure: read params, open the store; activate: poll timer + services; deactivate: stop the
timer (a running training process finishes); cleanup/shutdown: terminate a running process.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import String
from std_srvs.srv import Trigger

from taskmem_interfaces.msg import AdapterInfo
from taskmem_interfaces.srv import LoadAdapter
from taskmem_ros.config import ConfigError, TrainingConfig, from_flat, nest, to_flat
from taskmem_ros.nodes.conversions import ns_to_time
from taskmem_ros.nodes.lifecycle import LATCHED_QOS, run, schedule_autostart
from taskmem_ros.nodes.params import declare_config, read_config
from taskmem_ros.store import EpisodicStore, StoreError

DEFAULT_TRAIN_COMMAND = [sys.executable, "-m", "taskmem_ros.training.cli", "phase2", "--json-progress"]

NODE_PARAMS: dict[str, Any] = {
    "every_n_tasks": 50,  # new non-eval tasks since the last adapter that trigger Phase Two; 0 = only on request
    "poll_s": 30.0,  # how often the task count is checked
    "robot_load_adapter_service": "/memorizer/load_adapter",  # the robot memorizer's LoadAdapter
    "deliver": True,  # call LoadAdapter on the robot after a successful run
    "delivery_wait_s": 30.0,  # wait this long for the robot's service to appear
    "delivery_timeout_s": 300.0,  # and this long for its reply (it swaps between policy batches)
    # argv of the training process; "--params <tmp params file>" is appended
    "train_command": list(DEFAULT_TRAIN_COMMAND),
    "progress_topic": "~/progress",  # std_msgs/String, one JSON object per message
    "adapter_topic": "~/adapter",  # AdapterInfo, latched: the latest trained adapter
    "terminate_timeout_s": 10.0,  # SIGTERM -> SIGKILL grace for a training process on cleanup
    "autostart": False,  # configure + activate on start (no lifecycle manager needed)
}
TRAINING_PARAMS: dict[str, Any] = to_flat(TrainingConfig())


class TrainingRun:
    """One training process: its stdout JSON lines, stderr tail and final event."""

    def __init__(self, proc: subprocess.Popen[str], params_path: str, started_count: int) -> None:
        self.proc = proc
        self.params_path = params_path
        self.started_count = started_count
        self.started = time.monotonic()
        self.final: dict[str, Any] | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.stderr_thread: threading.Thread | None = None


class TunerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("tuner", **kwargs)
        declare_config(self, NODE_PARAMS)
        for name, default in TRAINING_PARAMS.items():  # second pass: TrainingConfig
            if not self.has_parameter(name):
                self.declare_parameter(name, default)
        self._store: EpisodicStore | None = None
        self._lock = threading.Lock()
        self._run: TrainingRun | None = None
        self._baseline = 0  # task count covered by the last adapter / run
        self._progress_pub: Any = None
        self._adapter_pub: Any = None
        self._load_client: Any = None
        self._timer: Any = None
        self._services: list[Any] = []
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._service_group = ReentrantCallbackGroup()
        self._client_group = ReentrantCallbackGroup()
        self.last_result: dict[str, Any] = {}
        self.last_delivery: dict[str, Any] = {}
        self.runs = 0
        schedule_autostart(self)

    # -- lifecycle ----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg, self._extra = read_config(self, NODE_PARAMS)
            tflat = {name: self.get_parameter(name).value for name in TRAINING_PARAMS}
            self._tcfg = from_flat(TrainingConfig, tflat)
            self._check_extra()
            self._store = EpisodicStore(cfg.store)
            self._store.open()
            self._baseline = self._covered_count()
        except (ConfigError, StoreError, ValueError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            if self._store is not None:
                self._store.close()
                self._store = None
            return TransitionCallbackReturn.FAILURE
        self._cfg = cfg
        self._progress_pub = self.create_publisher(String, self._extra["progress_topic"], 50)
        self._adapter_pub = self.create_publisher(AdapterInfo, self._extra["adapter_topic"], LATCHED_QOS)
        self._load_client = self.create_client(
            LoadAdapter, self._extra["robot_load_adapter_service"], callback_group=self._client_group
        )
        self.get_logger().info(
            f"configured: store={cfg.store.url} model={cfg.model.identity} every_n_tasks={self._extra['every_n_tasks']}"
            f" tasks covered={self._baseline} robot={self._extra['robot_load_adapter_service']}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _check_extra(self) -> None:
        e = self._extra
        if int(e["every_n_tasks"]) < 0:
            raise ConfigError(f"every_n_tasks={e['every_n_tasks']!r} is invalid; expected >= 0 (0 = only on request)")
        if float(e["poll_s"]) <= 0:
            raise ConfigError(f"poll_s={e['poll_s']!r} is invalid; expected > 0")
        cmd = list(e["train_command"])
        if not cmd or not all(isinstance(c, str) and c for c in cmd):
            raise ConfigError(f"train_command={cmd!r} is invalid; expected a non-empty list of arguments")
        if not str(e["robot_load_adapter_service"]).strip():
            raise ConfigError("robot_load_adapter_service='' is invalid; expected a service name")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._services = [
            self.create_service(Trigger, "~/run_phase2", self._on_run_phase2, callback_group=self._service_group),
            self.create_service(Trigger, "~/get_status", self._on_status, callback_group=self._service_group),
        ]
        if int(self._extra["every_n_tasks"]) > 0:
            self._timer = self.create_timer(float(self._extra["poll_s"]), self._poll, callback_group=self._timer_group)
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_serving(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for srv in self._services:
            self.destroy_service(srv)
        self._services = []

    def _release(self) -> None:
        self.terminate_training()
        with self._lock:
            for attr, destroy in (
                ("_progress_pub", self.destroy_publisher),
                ("_adapter_pub", self.destroy_publisher),
                ("_load_client", self.destroy_client),
            ):
                handle = getattr(self, attr)
                setattr(self, attr, None)
                if handle is not None:
                    destroy(handle)
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- task counting ----------------------------------------------------------------------
    def _task_count(self) -> int:
        assert self._store is not None
        return len(self._store.tasks(is_eval=False))

    def _covered_count(self) -> int:
        """Tasks logged up to the newest registered adapter: what it was trained on."""
        assert self._store is not None
        adapters = self._store.adapters()
        if not adapters:
            return 0
        newest = max(a.created_ns for a in adapters)
        return sum(1 for t in self._store.tasks(is_eval=False) if t.created_ns <= newest)

    def _poll(self) -> None:
        if self._store is None or self.running:
            return
        try:
            count = self._task_count()
        except StoreError as exc:
            self.get_logger().warning(f"cannot count tasks: {exc}", throttle_duration_sec=300.0)
            return
        n = int(self._extra["every_n_tasks"])
        if n > 0 and count - self._baseline >= n:
            self.get_logger().info(f"{count - self._baseline} new tasks since the last adapter: starting Phase Two")
            self.start_training(reason="every_n_tasks")

    # -- training process -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._run is not None

    def _params_file(self) -> str:
        nested = nest({**to_flat(self._cfg), **to_flat(self._tcfg)})
        fd, path = tempfile.mkstemp(prefix="taskmem-tuner-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump({"tuner": {"ros__parameters": nested}}, f, sort_keys=False)
        return path

    def start_training(self, reason: str = "request") -> str:
        """Start the training process unless one runs; never blocks on it."""
        with self._lock:
            if self._run is not None:
                return "already running"
            if self._store is None or self._progress_pub is None:
                return "not configured"
            try:
                count = self._task_count()
            except StoreError as exc:
                self.get_logger().warning(f"cannot count tasks before the run: {exc}")
                count = self._baseline
            params = self._params_file()
            cmd = [*self._extra["train_command"], "--params", params]
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    bufsize=1,
                    env=dict(os.environ, PYTHONUNBUFFERED="1"),
                    start_new_session=True,  # Ctrl-C on the node is ours to forward (terminate_training)
                )
            except OSError as exc:
                Path(params).unlink(missing_ok=True)
                self.get_logger().error(f"cannot start {cmd[0]!r}: {exc}")
                self._publish_progress({"event": "error", "message": f"cannot start training: {exc}"})
                return f"failed to start: {exc}"
            self._run = TrainingRun(proc, params, count)
            self.runs += 1
        self.get_logger().info(f"Phase Two started ({reason}): pid {proc.pid}: {' '.join(cmd)}")
        self._publish_progress({"event": "started", "reason": reason, "pid": proc.pid, "tasks": count})
        run_ = self._run
        run_.stderr_thread = threading.Thread(target=self._read_stderr, args=(run_,), daemon=True, name="tuner-stderr")
        run_.stderr_thread.start()
        threading.Thread(target=self._follow, args=(run_,), daemon=True, name="tuner-train").start()
        return "started"

    def _read_stderr(self, run_: TrainingRun) -> None:
        assert run_.proc.stderr is not None
        for line in run_.proc.stderr:
            line = line.rstrip()
            if line:
                run_.stderr_tail.append(line)
                self.get_logger().debug(f"train: {line}")

    def _follow(self, run_: TrainingRun) -> None:
        """Background thread: republish progress, then act on the final event."""
        assert run_.proc.stdout is not None
        for line in run_.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.get_logger().info(f"train: {line}")
                continue
            if not isinstance(event, dict):
                continue
            self._publish_progress(event)
            if event.get("event") in ("done", "skipped", "error"):
                run_.final = event
        rc = run_.proc.wait()
        if run_.stderr_thread is not None:
            run_.stderr_thread.join(5.0)
        Path(run_.params_path).unlink(missing_ok=True)
        final = run_.final or {}
        kind = final.get("event")
        if rc == 0 and kind == "done":
            self._on_trained(run_, final)
        elif kind == "skipped" or rc == 3:
            self._baseline_unchanged_log(final)
        else:
            tail = " | ".join(list(run_.stderr_tail)[-5:])
            message = final.get("message") or f"training exited with status {rc}: {tail}"
            self.get_logger().error(f"Phase Two failed (exit {rc}): {message}")
            self.last_result = {"event": "error", "returncode": rc, "message": message}
            if kind != "error":  # the process died without saying why: say it for it
                self._publish_progress({"event": "error", "returncode": rc, "message": message})
        with self._lock:
            self._run = None

    def _baseline_unchanged_log(self, final: dict[str, Any]) -> None:
        message = final.get("message", "")
        self.get_logger().info(f"Phase Two skipped: {message}")
        self.last_result = {"event": "skipped", "message": message}

    def terminate_training(self) -> None:
        run_ = self._run
        if run_ is None or run_.proc.poll() is not None:
            return
        self.get_logger().warning(f"terminating the training process (pid {run_.proc.pid})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run_.proc.pid, signal.SIGTERM)
        try:
            run_.proc.wait(float(self._extra["terminate_timeout_s"]))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run_.proc.pid, signal.SIGKILL)
            run_.proc.wait(5.0)

    # -- results and delivery -----------------------------------------------------------
    def _on_trained(self, run_: TrainingRun, done: dict[str, Any]) -> None:
        self._baseline = max(self._baseline, run_.started_count)
        msg = self._adapter_msg(done)
        self.last_result = {k: done.get(k) for k in ("event", "adapter_id", "path", "sha256", "metrics")}
        self.get_logger().info(f"Phase Two done: adapter {msg.adapter_id!r} at {msg.path} ({msg.sha256[:12]})")
        with self._lock:
            pub = self._adapter_pub
        if pub is not None:
            pub.publish(msg)
        if self._extra["deliver"]:
            self._deliver(msg)

    def _adapter_msg(self, done: dict[str, Any]) -> AdapterInfo:
        msg = AdapterInfo()
        msg.header.stamp = ns_to_time(time.time_ns())
        msg.adapter_id = str(done.get("adapter_id", ""))
        msg.path = str(done.get("path", ""))
        msg.sha256 = str(done.get("sha256", ""))
        msg.metrics_json = json.dumps(done.get("metrics") or {}, default=str)
        msg.active = False  # trained, not (yet) active on the robot
        try:
            from taskmem_ros.adapters import AdapterError, read_adapter

            meta = read_adapter(msg.path)
            msg.kind, msg.base_model = meta.kind, meta.base_model
        except (AdapterError, OSError, ImportError) as exc:
            self.get_logger().warning(f"cannot read the adapter's metadata: {exc}")
        return msg

    def _deliver(self, info: AdapterInfo) -> None:
        """Runs on the training thread (not an executor callback): waiting for the service is
        fine here; the call itself is asynchronous and its reply handled in a done callback."""
        service = self._extra["robot_load_adapter_service"]
        with self._lock:
            client = self._load_client
        if client is None:
            return
        if not client.wait_for_service(timeout_sec=float(self._extra["delivery_wait_s"])):
            self._delivered(info, False, f"robot service {service} not available", None)
            return
        req = LoadAdapter.Request(path=info.path, sha256=info.sha256, adapter_id=info.adapter_id)
        self._publish_progress({"event": "delivering", "service": service, "adapter_id": info.adapter_id})
        future = client.call_async(req)
        replied = threading.Event()

        def on_reply(fut: Any) -> None:
            replied.set()
            try:
                resp = fut.result()
            except Exception as exc:  # the service went away mid-call
                self._delivered(info, False, f"LoadAdapter failed: {exc}", None)
                return
            if resp is None:
                self._delivered(info, False, "LoadAdapter call cancelled", None)
                return
            self._delivered(info, bool(resp.success), resp.message, resp)

        future.add_done_callback(on_reply)
        if not replied.wait(float(self._extra["delivery_timeout_s"])):
            future.cancel()
            self._delivered(info, False, f"no reply from {service} within {self._extra['delivery_timeout_s']}s", None)

    def _delivered(self, info: AdapterInfo, success: bool, message: str, resp: Any) -> None:
        active = resp.active.adapter_id if resp is not None else ""
        self.last_delivery = {"adapter_id": info.adapter_id, "success": success, "message": message, "active": active}
        self._publish_progress({"event": "delivered" if success else "delivery_refused", **self.last_delivery})
        if success:
            self.get_logger().info(f"robot accepted adapter {info.adapter_id!r}: {message}")
            with self._lock:
                pub = self._adapter_pub
            if pub is not None and resp is not None:
                pub.publish(resp.active)  # now active on the robot
        else:
            # the robot keeps (or rolled back to) its previous adapter; nothing to undo here
            self.get_logger().error(f"robot refused adapter {info.adapter_id!r} (still active: {active!r}): {message}")

    def _publish_progress(self, event: dict[str, Any]) -> None:
        with self._lock:
            pub = self._progress_pub
        if pub is not None:
            pub.publish(String(data=json.dumps(event, default=str)))

    # -- services -------------------------------------------------------------------------
    def _on_run_phase2(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.message = self.start_training(reason="request")
        response.success = response.message == "started"
        return response

    def _on_status(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            count = self._task_count() if self._store is not None else 0
        except StoreError:
            count = -1
        status = {
            "running": self.running,
            "runs": self.runs,
            "tasks": count,
            "tasks_covered": self._baseline,
            "every_n_tasks": int(self._extra["every_n_tasks"]),
            "last_result": self.last_result,
            "last_delivery": self.last_delivery,
        }
        response.success, response.message = True, json.dumps(status, default=str)
        return response


def main(args: list[str] | None = None) -> int:
    return run(TunerNode, args)


if __name__ == "__main__":
    sys.exit(main())

"""A test-side ROS client with its own context and background executor (real DDS, loopback)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from taskmem_interfaces.action import AnswerTask
from taskmem_interfaces.msg import AdapterInfo, MemoryEntry
from taskmem_interfaces.srv import LoadAdapter, QueryMemory


class GraphClient:
    def __init__(self, name: str = "taskmem_test_client") -> None:
        self.last_answer_status = 0
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self.answer_client = ActionClient(self.node, AnswerTask, "answer_task")
        self.query_client = self.node.create_client(QueryMemory, "query_memory")
        self.entries: list[MemoryEntry] = []
        self._lock = threading.Lock()
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(MemoryEntry, "memory/entries", self._on_entry, qos)
        self.adapters: list[AdapterInfo] = []
        latched = QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.node.create_subscription(AdapterInfo, "memory/adapter", self.adapters.append, latched)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_entry(self, msg: MemoryEntry) -> None:
        with self._lock:
            self.entries.append(msg)

    def entry_ids(self) -> list[int]:
        with self._lock:
            return [e.id for e in self.entries]

    @staticmethod
    def _wait(future: Any, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError("ROS call timed out")
            time.sleep(0.02)
        return future.result()

    def wait_active(self, nodes: list[str], procs: list[subprocess.Popen[Any]], timeout_s: float = 600) -> None:
        """Until every lifecycle node reports ``active`` (its models loaded): the condition, not a
        fixed deadline (a loaded 2-core machine loads Whisper, the detector and MiniLM slowly);
        bounded, and failing at once if a process exits. A request that gets no answer is asked
        again: discovery can still list a node of that name that an earlier test killed with
        SIGKILL, and a request matched only to it is never answered."""
        from lifecycle_msgs.srv import GetState

        deadline = time.monotonic() + timeout_s
        for name in nodes:
            client = self.node.create_client(GetState, f"/{name}/get_state")
            while True:
                dead = [p.args for p in procs if p.poll() is not None]
                assert not dead, f"exited before {name} was active: {dead}"
                assert time.monotonic() < deadline, f"{name} not active after {timeout_s} s"
                if client.wait_for_service(timeout_sec=1.0):
                    future = client.call_async(GetState.Request())
                    try:
                        if self._wait(future, 3.0).current_state.label == "active":
                            break
                    except TimeoutError:
                        client.remove_pending_request(future)
                time.sleep(0.2)
            self.node.destroy_client(client)

    def answer(
        self,
        question: str,
        choices: list[str] | None = None,
        asked_at_ns: int = 0,
        is_eval: bool = False,
        stream: str = "",
    ) -> Any:
        assert self.answer_client.wait_for_server(timeout_sec=30)
        goal = AnswerTask.Goal(question=question, choices=choices or [], is_eval=is_eval, stream=stream)
        goal.asked_at.sec, goal.asked_at.nanosec = divmod(asked_at_ns, 1_000_000_000)
        handle = self._wait(self.answer_client.send_goal_async(goal), 120)
        if not handle.accepted:
            return None
        response = self._wait(handle.get_result_async(), 120)
        self.last_answer_status = response.status  # action_msgs/GoalStatus: 4 succeeded, 6 aborted
        return response.result

    def query(
        self,
        text: str,
        as_of_ns: int = 0,
        max_results: int = 10,
        mode: str = "",
        window_start_ns: int = 0,
        window_end_ns: int = 0,
        stream: str = "",
    ) -> Any:
        assert self.query_client.wait_for_service(timeout_sec=30)
        req = QueryMemory.Request(text=text, max_results=max_results, mode=mode, stream=stream)
        req.as_of.sec, req.as_of.nanosec = divmod(as_of_ns, 1_000_000_000)
        req.window_start.sec, req.window_start.nanosec = divmod(window_start_ns, 1_000_000_000)
        req.window_end.sec, req.window_end.nanosec = divmod(window_end_ns, 1_000_000_000)
        return self._wait(self.query_client.call_async(req), 120)

    def trigger(self, service: str, timeout_s: float = 900) -> dict[str, Any]:
        """A Trigger call. The generous bound is for ``~/flush``, which waits for the whole
        backlog and is itself bounded by progress (a slow CI machine drains slowly, not never)."""
        client = self.node.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=30), service
        resp = self._wait(client.call_async(Trigger.Request()), timeout_s)
        return json.loads(resp.message) if resp.message.startswith("{") else {"message": resp.message}

    def forget(self, timeout_s: float = 120, service: str = "/memorizer/forget_memory", **fields: Any) -> Any:
        from taskmem_interfaces.srv import ForgetMemory

        client = self.node.create_client(ForgetMemory, service)
        assert client.wait_for_service(timeout_sec=30), service
        return self._wait(client.call_async(ForgetMemory.Request(**fields)), timeout_s)

    def load_adapter(self, path: str, sha256: str = "", adapter_id: str = "", timeout_s: float = 120) -> Any:
        client = self.node.create_client(LoadAdapter, "/memorizer/load_adapter")
        assert client.wait_for_service(timeout_sec=30)
        req = LoadAdapter.Request(path=str(path), sha256=sha256, adapter_id=adapter_id)
        return self._wait(client.call_async(req), timeout_s)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class Watcher:
    """The tuner's latched ~/status (TunerStatus) and ~/adapter (AdapterInfo), its RunPhase2 action
    (feedback collected) and GetTunerStatus, on the client's node."""

    def __init__(self, client: Any, ns: str = "") -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from taskmem_interfaces.action import RunPhase2
        from taskmem_interfaces.msg import AdapterInfo, TunerStatus
        from taskmem_interfaces.srv import GetTunerStatus

        self.client = client
        self.statuses: list[Any] = []
        self.adapters: list[Any] = []
        self.feedback: list[Any] = []
        self._lock = threading.Lock()
        latched = QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        client.node.create_subscription(TunerStatus, f"{ns}/tuner/status", self._on_status, latched)
        client.node.create_subscription(AdapterInfo, f"{ns}/tuner/adapter", self._on_adapter, latched)
        self.action = ActionClient(client.node, RunPhase2, f"{ns}/tuner/run_phase2")
        self.status_client = client.node.create_client(GetTunerStatus, f"{ns}/tuner/get_status")
        self.Goal = RunPhase2.Goal

    def _on_status(self, msg: Any) -> None:
        with self._lock:
            self.statuses.append(msg)

    def _on_adapter(self, msg: Any) -> None:
        with self._lock:
            self.adapters.append(msg)

    def _on_feedback(self, msg: Any) -> None:
        with self._lock:
            self.feedback.append(msg.feedback)

    def send(self, reason: str = "", deliver: int = 0, timeout_s: float = 60.0) -> Any:
        """Send a RunPhase2 goal; returns the result future (resolves to ``.result`` / ``.status``)."""
        assert self.action.wait_for_server(timeout_sec=timeout_s)
        goal = self.Goal(reason=reason, deliver=deliver)
        handle = self.client._wait(self.action.send_goal_async(goal, feedback_callback=self._on_feedback), timeout_s)
        assert handle.accepted
        self.last_handle = handle
        return handle.get_result_async()

    def result(self, future: Any, timeout_s: float = 120.0) -> Any:
        return self.client._wait(future, timeout_s)

    def run(self, reason: str = "", deliver: int = 0, timeout_s: float = 120.0) -> Any:
        return self.result(self.send(reason, deliver), timeout_s)

    def status(self) -> Any:
        from taskmem_interfaces.srv import GetTunerStatus

        assert self.status_client.wait_for_service(timeout_sec=30)
        return self.client._wait(self.status_client.call_async(GetTunerStatus.Request()), 30).status

    def wait_status(self, pred: Callable[[Any], bool], timeout_s: float = 120.0) -> Any:
        """The first published TunerStatus matching ``pred``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                hit = next((s for s in self.statuses if pred(s)), None)
            if hit is not None:
                return hit
            time.sleep(0.05)
        raise AssertionError(f"no matching TunerStatus in {timeout_s}s; got {[s.state for s in self.statuses]}")

    def clear(self) -> None:
        with self._lock:
            self.statuses.clear()
            self.feedback.clear()


def node_process(module: str, *params: str) -> subprocess.Popen[bytes]:
    """``python -m taskmem_ros.nodes.<module> --ros-args -p ...`` as its own process, output
    discarded (an unread pipe would block a chatty node once it fills)."""
    cmd = [sys.executable, "-m", f"taskmem_ros.nodes.{module}", "--ros-args"] + [x for p in params for x in ("-p", p)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout_s: float = 30.0) -> list[int | None]:
    """SIGINT (a node drains its backlog and exits 0), then SIGKILL past the deadline; the codes."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    return [p.returncode for p in procs]


@contextlib.contextmanager
def tuner_process(params: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The tuner node as its own process (as deployed), stopped with SIGINT."""
    with open(log_path, "w") as log:
        tuner = subprocess.Popen(
            [sys.executable, "-m", "taskmem_ros.nodes.tuner_node", "--ros-args", "--params-file", str(params)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            yield tuner
        finally:
            stop_processes([tuner])


def replay_bag(bag: Path) -> None:
    """``taskmem-replay`` onto the graph at 3x, as an operator would run it."""
    cmd = [sys.executable, "-m", "taskmem_ros.cli.replay", str(bag), "--rate", "3", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def record_later_bag(small_bag: Path, out: Path, later_s: int = 120) -> Any:
    """The ``small_bag`` recording again, ``later_s`` later on the stream clock: what is memorized
    after an adapter swap (100 frames, like the original)."""
    from taskmem_ros.bags.record_video import DEFAULT_START_NS, record_video

    media = small_bag.parent
    return record_video(media / "small.avi", out, audio_path=media / "small.wav", max_frames=100,
                        start_ns=DEFAULT_START_NS + later_s * 1_000_000_000, progress=False)  # fmt: skip

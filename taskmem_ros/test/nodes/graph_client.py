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

    def answer(
        self, question: str, choices: list[str] | None = None, asked_at_ns: int = 0, is_eval: bool = False
    ) -> Any:
        assert self.answer_client.wait_for_server(timeout_sec=30)
        goal = AnswerTask.Goal(question=question, choices=choices or [], is_eval=is_eval)
        goal.asked_at.sec, goal.asked_at.nanosec = divmod(asked_at_ns, 1_000_000_000)
        handle = self._wait(self.answer_client.send_goal_async(goal), 30)
        if not handle.accepted:
            return None
        return self._wait(handle.get_result_async(), 120).result

    def query(self, text: str, as_of_ns: int = 0, max_results: int = 10, mode: str = "") -> Any:
        assert self.query_client.wait_for_service(timeout_sec=30)
        req = QueryMemory.Request(text=text, max_results=max_results, mode=mode)
        req.as_of.sec, req.as_of.nanosec = divmod(as_of_ns, 1_000_000_000)
        return self._wait(self.query_client.call_async(req), 30)

    def trigger(self, service: str, timeout_s: float = 120) -> dict[str, Any]:
        client = self.node.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=30), service
        resp = self._wait(client.call_async(Trigger.Request()), timeout_s)
        return json.loads(resp.message) if resp.message.startswith("{") else {"message": resp.message}

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
    """Collects /tuner/progress (JSON) and the latched /tuner/adapter on the client's node."""

    def __init__(self, client: Any, ns: str = "") -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        from taskmem_interfaces.msg import AdapterInfo

        self.events: list[dict[str, Any]] = []
        self.adapters: list[Any] = []
        self._lock = threading.Lock()
        latched = QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        client.node.create_subscription(String, f"{ns}/tuner/progress", self._on_progress, reliable)
        client.node.create_subscription(AdapterInfo, f"{ns}/tuner/adapter", self._on_adapter, latched)

    def _on_progress(self, msg: Any) -> None:
        with self._lock:
            self.events.append(json.loads(msg.data))

    def _on_adapter(self, msg: Any) -> None:
        with self._lock:
            self.adapters.append(msg)

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout_s: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                hit = next((e for e in self.events if pred(e)), None)
            if hit is not None:
                return hit
            time.sleep(0.05)
        raise AssertionError(f"no matching progress event in {timeout_s}s; got {self.events}")

    def clear(self) -> None:
        with self._lock:
            self.events.clear()


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
            tuner.send_signal(signal.SIGINT)
            try:
                tuner.wait(30)
            except subprocess.TimeoutExpired:
                tuner.kill()
                tuner.wait(10)

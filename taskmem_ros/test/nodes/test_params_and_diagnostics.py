"""Parameters over rclpy's parameter services (descriptors, read-only, ranges, live reconfigure that
changes what the task server answers) and /diagnostics from the running graph."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import NS_PER_S, MemoryDraft

pytestmark = pytest.mark.ros
PKG = Path(__file__).resolve().parents[2]
OK, WARN, ERROR = 0, 1, 2


def _until(pred: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if got := pred():
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from diagnostic_msgs.msg import DiagnosticArray
    from graph_client import GraphClient

    from taskmem_ros.nodes.bringup import Bringup

    tmp = tmp_path_factory.mktemp("params")
    db = tmp / "m.db"
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="hash")) as store:
        store.add_entries("robot", [MemoryDraft("The keys are on the kitchen table", start_ns=0, end_ns=NS_PER_S)])
    params = yaml.safe_load((PKG / "config" / "robot.yaml").read_text())
    shared = params["/**"]["ros__parameters"]
    shared["store"] = {"url": f"sqlite:///{db}", "embedder": "hash"}
    # frames expected at 5 Hz, judged over 1 s windows, reported 5x a second: no frames is an ERROR
    shared["diagnostics"] = {"expected_frame_hz": 5.0, "rate_window_s": 1.0, "period_s": 0.2}
    params["memorizer"]["ros__parameters"]["sensor_qos"] = "reliable"
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    bringup = Bringup(["--ros-args", "--params-file", str(path), "-p", "memorizer:not_a_setting:=3"])
    client = GraphClient("params_probe")
    arrays: list[Any] = []
    lock = threading.Lock()

    def on_diag(msg: Any) -> None:
        with lock:
            arrays.append(msg)

    client.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 100)

    def latest(name: str) -> Any:
        with lock:
            found = [s for a in arrays for s in a.status if s.name == name]
        return found[-1] if found else None

    try:
        bringup.activate()
        bringup.spin_in_background()
        yield {"bringup": bringup, "client": client, "latest": latest, "arrays": arrays, "lock": lock}
    finally:
        client.close()
        bringup.shutdown()


def _params(client: Any, node: str) -> Any:
    from rclpy.parameter_client import AsyncParameterClient

    pc = AsyncParameterClient(client.node, node)
    assert pc.wait_for_services(timeout_sec=30)
    return pc


def test_descriptors_come_from_the_typed_config(graph: dict[str, Any]) -> None:
    client = graph["client"]
    pc = _params(client, "/task_server")
    names = ["answer.abstain_threshold", "store.url", "policy.batch_size", "default_max_results"]
    thr, url, batch, limit = client._wait(pc.describe_parameters(names), 30).descriptors
    assert "abstains" in thr.description and not thr.read_only
    assert (thr.floating_point_range[0].from_value, thr.floating_point_range[0].to_value) == (-1.0, 1.0)
    assert url.read_only and "SQLAlchemy" in url.description
    assert (batch.integer_range[0].from_value, batch.integer_range[0].to_value) == (1, 256)
    assert limit.read_only and limit.integer_range[0].from_value == 1 and limit.description
    mem = graph["bringup"].memorizer
    assert mem.params.unknown == ["not_a_setting"] and not mem.has_parameter("not_a_setting")


def test_live_reconfigure_changes_answers_and_refuses_what_needs_configure(graph: dict[str, Any]) -> None:
    from rclpy.parameter import Parameter

    client = graph["client"]
    pc = _params(client, "/task_server")

    def set_(name: str, value: Any) -> Any:
        return client._wait(pc.set_parameters([Parameter(name, value=value)]), 30).results[0]

    question = ("Where are the keys?", 5 * NS_PER_S)
    assert set_("answer.abstain_threshold", -1.0).successful  # any support answers
    assert not client.answer(question[0], asked_at_ns=question[1]).abstained
    assert set_("answer.abstain_threshold", 1.0).successful  # no support is ever enough
    assert client.answer(question[0], asked_at_ns=question[1]).abstained
    assert graph["bringup"].task_server._answerer.cfg.abstain_threshold == 1.0
    refused = set_("answer.abstain_threshold", 5.0)  # outside the descriptor's range
    assert not refused.successful and "abstain_threshold" in refused.reason
    refused = set_("store.url", "sqlite:///elsewhere.db")  # needs configure again: read-only
    assert not refused.successful and "read-only" in refused.reason.lower()
    assert set_("answer.abstain_threshold", 0.35).successful


def test_diagnostics_from_the_running_graph(graph: dict[str, Any]) -> None:
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    client, latest = graph["client"], graph["latest"]
    for name in ("ingest", "policy", "adapter", "store", "microphone"):
        _until(lambda n=name: latest(f"memorizer: {n}"), 60, f"memorizer: {name}")
    assert _until(lambda: latest("task_server: store"), 60, "task_server: store").values
    store = latest("memorizer: store")
    values = {kv.key: kv.value for kv in store.values}
    assert values["entries"] == "1" and float(values["free_disk_mb"]) > 0 and store.hardware_id == "robot"
    assert latest("memorizer: adapter").message == "(base model)"
    # no camera for a whole window while 5 Hz are expected: ERROR
    _until(lambda: (s := latest("memorizer: camera")) and s.level == bytes([ERROR]), 60, "camera ERROR")

    pub = client.node.create_publisher(
        Image, "camera/image_raw", QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    )
    _until(lambda: pub.get_subscription_count() > 0, 30, "memorizer subscribed")
    frame = np.zeros((48, 64, 3), np.uint8)
    for i in range(3):
        msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=frame.tobytes())
        msg.header.stamp.sec = i
        pub.publish(msg)

    def received(n: int) -> bool:
        s = latest("memorizer: camera")
        return s is not None and {kv.key: kv.value for kv in s.values}.get("received") == str(n)

    _until(lambda: received(3), 60, "3 frames counted")
    # live: stop checking the camera rate; the next reports say so
    pc = _params(client, "/memorizer")
    res = client._wait(pc.set_parameters([Parameter("diagnostics.expected_frame_hz", value=0.0)]), 30).results[0]
    assert res.successful, res.reason
    _until(lambda: (s := latest("memorizer: camera")) and "not checked" in s.message, 60, "camera not checked")
    assert latest("memorizer: camera").level == bytes([OK])

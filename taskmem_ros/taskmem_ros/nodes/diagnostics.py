"""``diagnostics.Status`` records -> ``/diagnostics`` (diagnostic_msgs/DiagnosticArray) on a timer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node

from taskmem_ros.diagnostics import Status

TOPIC = "/diagnostics"  # absolute: aggregators and rqt_robot_monitor read the global topic


def to_array(statuses: list[Status], hardware_id: str, stamp: Any) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    for s in statuses:
        msg.status.append(
            DiagnosticStatus(
                level=bytes([s.level]),
                name=s.name,
                message=s.message,
                hardware_id=hardware_id,
                values=[KeyValue(key=k, value=v) for k, v in s.values.items()],
            )
        )
    return msg


class DiagnosticsTimer:
    """Publishes ``collect()`` every ``period_s`` on its own callback group (store stats may take ms)."""

    def __init__(self, node: Node, period_s: float, hardware_id: str, collect: Callable[[], list[Status]]) -> None:
        self._node, self._collect, self.hardware_id = node, collect, hardware_id
        self._pub = node.create_publisher(DiagnosticArray, TOPIC, 10)
        self._timer = node.create_timer(period_s, self._tick, callback_group=MutuallyExclusiveCallbackGroup())

    def _tick(self) -> None:
        try:
            statuses = self._collect()
        except Exception as exc:  # a diagnostics bug must not take the node down; report it instead
            statuses = [Status(f"{self._node.get_name()}: diagnostics", 2, f"cannot collect: {exc}")]
        self._pub.publish(to_array(statuses, self.hardware_id, self._node.get_clock().now().to_msg()))

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._pub)

"""What both lifecycle nodes share: self-activation without a lifecycle manager, and `main`."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

# Latest-value topics (the active adapter): late subscribers still get the last message.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def schedule_autostart(node: LifecycleNode) -> None:
    """configure + activate once the executor spins, when the ``autostart`` parameter is true."""
    if not node.get_parameter("autostart").value:
        return

    def fire() -> None:
        node.destroy_timer(timer)
        if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()

    timer = node.create_timer(0.0, fire)


def run(make_node: Callable[[], LifecycleNode], args: list[str] | None = None) -> int:
    """Spin one node on a MultiThreadedExecutor until Ctrl-C; shut it down cleanly (drains)."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = make_node()
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        shutdown(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def shutdown(node: LifecycleNode) -> None:
    """The shutdown transition (deactivate drains the memorizer), tolerant of any state."""
    try:
        node.trigger_shutdown()
    except Exception as exc:  # already finalized or mid-transition
        node.get_logger().warning(f"shutdown transition: {exc}")

"""What every lifecycle node shares: bring to active (the ``autostart`` parameter and
``taskmem-bringup`` use the same two transitions a launch file's lifecycle_node does), and the one
spin runner (single nodes' ``main`` and the single-process bringup)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

# Latest-value topics (the active adapter): late subscribers still get the last message.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def bring_to_active(node: LifecycleNode) -> str:
    """configure, then activate; "" on success, else which transition failed."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return f"{node.get_name()}: configure failed (see log)"
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        return f"{node.get_name()}: activate failed (see log)"
    return ""


def schedule_autostart(node: LifecycleNode) -> None:
    """:func:`bring_to_active` once the executor spins, when the ``autostart`` parameter is true."""
    if not node.get_parameter("autostart").value:
        return

    def fire() -> None:
        node.destroy_timer(timer)
        if failed := bring_to_active(node):
            node.get_logger().error(failed)

    timer = node.create_timer(0.0, fire)


def make_executor(nodes: Sequence[LifecycleNode], context: rclpy.Context | None = None) -> MultiThreadedExecutor:
    executor = MultiThreadedExecutor(num_threads=max(4, 2 * len(nodes)), context=context)
    for node in nodes:
        executor.add_node(node)
    return executor


def spin(executor: MultiThreadedExecutor) -> None:
    """Until Ctrl-C or the context shuts down."""
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        executor.spin()


def run(make_node: Callable[[], LifecycleNode], args: list[str] | None = None) -> int:
    """A node's ``main``: spin it until Ctrl-C, then shut it down cleanly (drains)."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = make_node()
    try:
        spin(make_executor([node]))
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

"""Declare every TaskMemConfig field as a ROS parameter and read them back into the config."""

from __future__ import annotations

from typing import Any

from rclpy.node import Node

from taskmem_ros.config import TaskMemConfig, from_flat, to_flat


def declare_config(node: Node, extra: dict[str, Any]) -> None:
    """Defaults come from the dataclasses, so the YAML, the node and the core never disagree."""
    for name, default in {**to_flat(TaskMemConfig()), **extra}.items():
        if not node.has_parameter(name):
            node.declare_parameter(name, default)


def read_config(node: Node, extra: dict[str, Any]) -> tuple[TaskMemConfig, dict[str, Any]]:
    flat = {name: node.get_parameter(name).value for name in to_flat(TaskMemConfig())}
    cfg = from_flat(TaskMemConfig, flat)
    extras = {name: node.get_parameter(name).value for name in extra}
    # Overrides (params file, -p) for names the node never declares are silently ignored by
    # rclpy: say so, since that is how a typo in a YAML key looks.
    unknown = sorted(n for n in node._parameter_overrides if not node.has_parameter(n))
    if unknown:
        node.get_logger().warning(f"ignoring unknown parameter(s) {unknown}; valid: see taskmem_ros/config.py")
    return cfg, extras

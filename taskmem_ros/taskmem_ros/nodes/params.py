"""Declare every TaskMemConfig field as a ROS parameter and read them back into the config."""

from __future__ import annotations

from typing import Any

from rclpy.node import Node

from taskmem_ros.config import ConfigError, TaskMemConfig, from_flat, to_flat


def declare_config(node: Node, extra: dict[str, Any]) -> None:
    """Defaults come from the dataclasses, so the YAML, the node and the core never disagree."""
    for name, default in {**to_flat(TaskMemConfig()), **extra}.items():
        if not node.has_parameter(name):
            node.declare_parameter(name, default)


def read_config(node: Node, extra: dict[str, Any]) -> tuple[TaskMemConfig, dict[str, Any]]:
    flat = {name: node.get_parameter(name).value for name in to_flat(TaskMemConfig())}
    cfg = from_flat(TaskMemConfig, flat)
    extras = {name: node.get_parameter(name).value for name in extra}
    unknown = sorted(
        n
        for n in node._parameters
        if n not in flat and n not in extras and n not in ("use_sim_time", "start_type_description_service")
    )
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for node {node.get_name()!r}")
    return cfg, extras

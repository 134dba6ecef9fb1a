"""Typed config dataclasses <-> ROS parameters with descriptors, and live reconfigure.

Every field becomes a parameter whose ``ParameterDescriptor`` (type, description, range, choices,
read-only) comes from ``param_schema``. Nodes are built with
``automatically_declare_parameters_from_overrides=True`` so the overrides (params file, ``-p``)
are visible through the public API: each known one is coerced to the field's type (``10`` for a
float is fine), undeclared and declared again with its descriptor; unknown ones (a typo in a YAML
key) are logged and removed. A bad value never raises from the constructor: it is kept as an
error that fails configure with one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from taskmem_ros.config import ConfigError, coerce_value, from_flat
from taskmem_ros.param_schema import INT64_MAX, INT64_MIN, ParamSpec, specs

T = TypeVar("T")
# Declared by rclpy itself on every node: never "unknown".
BUILTIN = frozenset({"use_sim_time", "start_type_description_service"})
# Node kwargs that make parameter overrides readable without private attributes.
NODE_KWARGS: dict[str, Any] = {"automatically_declare_parameters_from_overrides": True}

_PTYPE = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """What ``ros2 param describe`` shows for one field."""
    d = ParameterDescriptor(
        name=spec.name,
        type=_PTYPE.get(spec.type, ParameterType.PARAMETER_STRING_ARRAY),
        description=spec.description,
        additional_constraints=spec.constraints,
        read_only=spec.read_only,
    )
    if spec.min is None and spec.max is None:
        return d
    if spec.type is int:
        lo = int(spec.min) if spec.min is not None else INT64_MIN
        hi = int(spec.max) if spec.max is not None else INT64_MAX
        d.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=0)]
    elif spec.type is float:
        lo_f = float(spec.min) if spec.min is not None else -sys.float_info.max
        hi_f = float(spec.max) if spec.max is not None else sys.float_info.max
        d.floating_point_range = [FloatingPointRange(from_value=lo_f, to_value=hi_f, step=0.0)]
    return d


def checked(spec: ParamSpec, raw: Any) -> Any:
    """``raw`` as the field's type, inside its range and choices, else ConfigError (one line)."""
    value = coerce_value(spec.name, raw, spec.type)
    if spec.type not in _PTYPE:  # list[str]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{spec.name}={raw!r} must be a list of strings")
        return list(value)
    outside = (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max)
    if outside or (spec.choices and value not in spec.choices):
        raise ConfigError(f"{spec.name}={value!r} is invalid; expected {spec.constraints}")
    return value


class NodeParameters:
    """The typed sections (``TaskMemConfig()``, ``MemorizerParams()``...) of one node's parameters."""

    def __init__(self, node: Node, *defaults: Any) -> None:
        self._node = node
        self._sections = {type(d): [s.name for s in specs(d)] for d in defaults}
        self._specs = {s.name: s for d in defaults for s in specs(d)}
        self.errors: list[str] = []
        self._listeners: list[Callable[[list[str]], None]] = []
        overrides = node.get_parameters_by_prefix("")
        for name, spec in self._specs.items():
            value = spec.default
            if name in overrides:
                node.undeclare_parameter(name)
                try:
                    value = checked(spec, overrides[name].value)
                except ConfigError as exc:
                    self.errors.append(str(exc))
            node.declare_parameter(name, value, descriptor(spec), ignore_override=True)
        self.unknown = sorted(set(overrides) - set(self._specs) - BUILTIN)
        for name in self.unknown:
            node.undeclare_parameter(name)
        if self.unknown:
            node.get_logger().warning(
                f"ignoring unknown parameter(s) {self.unknown}; valid: see `ros2 param list` or taskmem_ros/config.py"
            )
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._applied)

    def read(self, cls: type[T]) -> T:
        """The section as its dataclass; ConfigError on a bad value (also one kept from start)."""
        if self.errors:
            raise ConfigError("; ".join(self.errors))
        return from_flat(cls, {n: self._value(n) for n in self._sections[cls]})

    def on_change(self, listener: Callable[[list[str]], None]) -> None:
        """``listener(names)`` after live parameters were set (already validated)."""
        self._listeners.append(listener)

    def _value(self, name: str) -> Any:
        value = self._node.get_parameter(name).value
        return list(value) if self._specs[name].type not in _PTYPE else value

    def _validate(self, params: list[Parameter[Any]]) -> SetParametersResult:
        """rclpy enforces type, range and read-only; the dataclass checks the rest (cross-field)."""
        changed = {p.name: p.value for p in params if p.name in self._specs}
        for cls, names in self._sections.items():
            if not changed.keys() & set(names):
                continue
            flat = {n: changed.get(n, self._value(n)) for n in names}
            try:
                from_flat(cls, flat)
            except ConfigError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _applied(self, params: list[Parameter[Any]]) -> None:
        names = [p.name for p in params if p.name in self._specs]
        if names:
            for listener in self._listeners:
                listener(names)

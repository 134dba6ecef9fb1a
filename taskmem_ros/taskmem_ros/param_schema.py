"""What ``ros2 param describe`` shows, generated from the typed config dataclasses (ROS-free).

Descriptions are the comments written beside (or above) each field, falling back to the class
docstring; numeric ranges and choices are read from the ``_check``/``_one_of`` calls of the
class's ``__post_init__``, so the validation stays the single source and the descriptors can
never drift from it. Only cross-field checks (``overlap_seconds < clip_seconds``) are left to the
dataclass, which still validates every value on configure.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import inspect
import io
import math
import operator
import sys
import textwrap
import tokenize
from dataclasses import dataclass
from typing import Any, get_type_hints

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Settings a running node applies without reconfigure (checked and applied by parameter
# callbacks); every other field of the typed config needs configure again and is read-only.
LIVE: frozenset[str] = frozenset(
    {
        "answer.abstain_threshold",
        "answer.margin",
        "answer.top_k",
        "answer.memory_chars",
        "answer.max_new_tokens",
    }
)
LIVE_PREFIXES: tuple[str, ...] = ("diagnostics.",)


def is_live(name: str) -> bool:
    return name in LIVE or name.startswith(LIVE_PREFIXES)


@dataclass(frozen=True)
class ParamSpec:
    """One dotted parameter: its type, default and what a descriptor says about it."""

    name: str
    type: Any  # bool, int, float, str or list[str]
    default: Any
    description: str
    min: float | None = None  # inclusive bounds (a strict "> 0" on an int becomes ">= 1")
    max: float | None = None
    choices: tuple[Any, ...] = ()
    read_only: bool = True

    @property
    def constraints(self) -> str:
        parts = []
        if self.choices:
            parts.append("one of " + ", ".join(repr(c) for c in self.choices))
        if self.min is not None or self.max is not None:
            parts.append(
                f"in [{self.min if self.min is not None else '-inf'}, {self.max if self.max is not None else 'inf'}]"
            )
        if not self.read_only:
            parts.append("changeable live")
        return "; ".join(parts)


def specs(cfg: Any, prefix: str = "") -> list[ParamSpec]:
    """Every leaf field of a config dataclass instance, dotted like :func:`config.to_flat`."""
    out: list[ParamSpec] = []
    cls = type(cfg)
    hints = get_type_hints(cls)
    comments = _field_comments(cls)  # type: ignore[arg-type]  # classes are hashable
    bounds, choices = _checks(cls)  # type: ignore[arg-type]
    doc = cls.__doc__ or ""
    if not doc or doc.startswith(cls.__name__ + "("):  # dataclass's generated signature
        doc = cls.__name__
    doc = inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            out.extend(specs(value, name + "."))
            continue
        lo, hi = bounds.get(f.name, (None, None))
        out.append(
            ParamSpec(
                name=name,
                type=hints[f.name],
                default=value,
                description=comments.get(f.name) or doc,
                min=lo,
                max=hi,
                choices=choices.get(f.name, ()),
                read_only=not is_live(name),
            )
        )
    return out


@functools.cache
def _field_comments(cls: type) -> dict[str, str]:
    """``name -> comment``: the trailing comment on the field's line, else the comment block
    right above it (blank lines break a block)."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    by_line: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if not text.startswith("--"):  # "# -- section --" headers describe no one field
                by_line[tok.start[0]] = text
    lines = src.splitlines()
    out: dict[str, str] = {}
    for node in ast.parse(src).body[0].body:  # type: ignore[attr-defined]
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        text = by_line.get(node.end_lineno or node.lineno, "")
        if not text:
            above: list[str] = []
            ln = node.lineno - 1
            while ln in by_line and lines[ln - 1].lstrip().startswith("#"):
                above.insert(0, by_line[ln])
                ln -= 1
            text = " ".join(above)
        if text:
            out[node.target.id] = text
    return out


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: operator.pow}


def _const(node: ast.AST, env: dict[str, Any]) -> float | None:
    """A numeric literal or a product/sum of them (``640 * 360``); None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _const(node.operand, env)
        return None if v is None else -v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _const(node.left, env), _const(node.right, env)
        return None if a is None or b is None else _OPS[type(node.op)](a, b)
    return None


def _self_field(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


@functools.cache
def _checks(cls: type) -> tuple[dict[str, tuple[float | None, float | None]], dict[str, tuple[Any, ...]]]:
    """Bounds and choices read from ``__post_init__``'s ``_check(cond, ...)`` / ``_one_of(...)``."""
    post = cls.__dict__.get("__post_init__")
    if post is None:
        return {}, {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(post)))
    except (OSError, TypeError, SyntaxError):
        return {}, {}
    env = vars(sys.modules[cls.__module__])
    hints = get_type_hints(cls)
    bounds: dict[str, list[float | None]] = {}
    choices: dict[str, tuple[Any, ...]] = {}
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or not call.args:
            continue
        if call.func.id == "_one_of" and len(call.args) == 3 and (field := _self_field(call.args[1])):
            opts = call.args[2]
            if isinstance(opts, ast.Name) and isinstance(env.get(opts.id), tuple):
                choices[field] = env[opts.id]
            elif isinstance(opts, ast.Tuple):
                with contextlib.suppress(ValueError):
                    choices[field] = tuple(ast.literal_eval(opts))
        if call.func.id == "_check" and isinstance(call.args[0], ast.Compare):
            _compare_bounds(call.args[0], env, hints, bounds)
    return {k: (v[0], v[1]) for k, v in bounds.items()}, choices


def _compare_bounds(
    cmp: ast.Compare, env: dict[str, Any], hints: dict[str, Any], bounds: dict[str, list[float | None]]
) -> None:
    """``a <= self.x <= b``, ``self.x > 0``... -> inclusive bounds on x (ints made exact)."""
    terms = [cmp.left, *cmp.comparators]
    for left, op, right in zip(terms, cmp.ops, terms[1:], strict=False):
        for node, other, flip in ((right, left, False), (left, right, True)):
            field = _self_field(node)
            value = _const(other, env)
            if field is None or value is None or hints.get(field) not in (int, float):
                continue
            # normalise to "value OP self.field"
            kind = type(op)
            if flip:
                kind = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE}.get(kind, kind)
            strict = kind in (ast.Lt, ast.Gt)
            is_int = hints[field] is int
            lo_hi = bounds.setdefault(field, [None, None])
            if kind in (ast.Lt, ast.LtE):  # value < field: a lower bound
                lo_hi[0] = math.floor(value) + 1 if strict and is_int else value
            elif kind in (ast.Gt, ast.GtE):  # value > field: an upper bound
                lo_hi[1] = math.ceil(value) - 1 if strict and is_int else value

"""Untrusted LLM output -> a JSON value: think blocks, code fences, prose around the value,
trailing commas, curly quotes, output cut at the token limit.

Shared by every reader of model output (the policy's entry parser, the answerer, the judge, the
training rewards). Ours rather than PyPI ``json-repair`` (0.64.4, measured on the cases of
``test/policy/test_parsing.py``): it repairs fences, trailing commas and curly quotes too, but
returns a value for every input (``''`` for prose or an empty output, ``[]`` for ``{{{{``), says
nothing about whether it repaired, and keeps the cut-off half entry of a truncated output
(``{"kind": "epis"}``); callers here must know whether a value was recovered (``ValueError``) and
whether it was repaired (counted as ``policy_repaired_outputs``).
"""

from __future__ import annotations

import json
import re
from typing import Any

_THINK = re.compile(r"<think>.*?</think>", re.S)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def strip_thinking(text: str) -> tuple[str, bool]:
    """Drop ``<think>`` blocks; an unclosed one means the answer never came."""
    out = _THINK.sub("", text)
    stripped = out != text
    if "</think>" in out:  # the template opened the block in the prompt: keep what follows
        out, stripped = out.rsplit("</think>", 1)[1], True
    if "<think>" in out:
        return out.split("<think>", 1)[0], True
    return out, stripped


def extract_json(text: str) -> tuple[Any, bool]:
    """(value, repaired). Raises ValueError when no JSON value can be recovered."""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON object or array in the output")
    body = text[min(starts) :]
    decoder = json.JSONDecoder()
    try:
        value, _ = decoder.raw_decode(body)  # ignores prose after the value
        return value, False
    except json.JSONDecodeError:
        pass
    fixed = _TRAILING_COMMA.sub(r"\1", body.replace("\u201c", '"').replace("\u201d", '"'))
    try:
        value, _ = decoder.raw_decode(fixed)
        return value, True
    except json.JSONDecodeError:
        pass
    return _close_truncated(fixed), True


def _close_truncated(body: str) -> Any:
    """Output cut at the token limit: keep every complete element, close the brackets."""
    cuts = [i for i, ch in enumerate(body) if ch in "}]"][-64:]
    for cut in reversed(cuts):
        prefix = body[: cut + 1]
        closing = _open_brackets(prefix)
        if closing is None:
            continue
        try:
            return json.loads(_TRAILING_COMMA.sub(r"\1", prefix + closing))
        except json.JSONDecodeError:
            continue
    raise ValueError("malformed JSON that could not be repaired")


def _open_brackets(prefix: str) -> str | None:
    stack: list[str] = []
    in_str = esc = False
    for ch in prefix:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and (not stack or stack.pop() != ch):
            return None
    if in_str:
        return None
    return "".join(reversed(stack))

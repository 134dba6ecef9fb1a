"""Model output -> memory entries, robustly.

LLM output is untrusted input: thinking blocks, code fences, prose around the JSON,
trailing commas, output cut off at the token limit, empty or repeated entries. Each is
repaired where the intent is clear and otherwise rejected; every rejection is counted
(``policy_*`` counters in the memorizer's stats), so a drifting adapter shows up as a
number, not as silent memory loss.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entries": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": ["episodic", "semantic"]},
                    "text": {"type": "string", "minLength": 1},
                    "start_s": {"type": "number"},
                    "end_s": {"type": "number"},
                },
                "required": ["kind", "text"],
            },
        }
    },
    "required": ["entries"],
}

_THINK = re.compile(r"<think>.*?</think>", re.S)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_WORDS = re.compile(r"[a-z0-9]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TEXT_KEYS = ("text", "memory", "content", "fact", "event")


@dataclass
class ParsedEntry:
    kind: str
    text: str
    start_s: float | None = None
    end_s: float | None = None


@dataclass
class ParseResult:
    entries: list[ParsedEntry] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    ok: bool = True  # False: nothing usable could be read from the output


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


def normalise(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def _similar(a: str, b: str) -> bool:
    if a == b:
        return True
    wa, wb = set(a.split()), set(b.split())
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= 0.9


def _cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;:")
    return (cut if len(cut) >= max_chars // 2 else text[:max_chars]).rstrip() + "..."


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) < 1e9 else None  # NaN/inf are dropped


def parse_entries(
    output: str,
    *,
    max_entries: int,
    max_chars: int,
    context: list[str] | tuple[str, ...] = (),
) -> ParseResult:
    res = ParseResult()
    c = res.counts
    c["policy_outputs"] += 1
    text, thought = strip_thinking(output or "")
    if thought:
        c["policy_think_stripped"] += 1
    try:
        value, repaired = extract_json(text)
    except ValueError:
        c["policy_malformed_outputs"] += 1
        res.ok = False
        return res
    if repaired:
        c["policy_repaired_outputs"] += 1
    items = _items(value)
    if items is None:
        c["policy_malformed_outputs"] += 1
        res.ok = False
        return res
    seen = [normalise(t) for t in context]
    for item in items:
        entry = _entry(item, c)
        if entry is None:
            continue
        entry.text = _cap(entry.text, max_chars)
        if len(entry.text) < len(" ".join(str(item.get("text", "") if isinstance(item, dict) else item).split())):
            c["policy_entries_truncated"] += 1
        key = normalise(entry.text)
        if not key:
            c["policy_entries_empty"] += 1
            continue
        if any(_similar(key, s) for s in seen[: len(context)]):
            c["policy_entries_repeat_context"] += 1
            continue
        if any(_similar(key, s) for s in seen[len(context) :]):
            c["policy_entries_duplicate"] += 1
            continue
        if len(res.entries) >= max_entries:
            c["policy_entries_over_limit"] += 1
            continue
        seen.append(key)
        res.entries.append(entry)
    c["policy_entries_accepted"] += len(res.entries)
    return res


def _items(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in ("entries", "memories", "memory", "items"):
            if isinstance(value.get(key), list):
                return list(value[key])
        if any(k in value for k in _TEXT_KEYS):
            return [value]
    return None


def _entry(item: Any, c: Counter[str]) -> ParsedEntry | None:
    text: str
    kind: Any = "episodic"
    start: float | None = None
    end: float | None = None
    if isinstance(item, str):
        text = item
    elif isinstance(item, dict):
        text = next((str(item[k]) for k in _TEXT_KEYS if isinstance(item.get(k), str)), "")
        kind = item.get("kind", item.get("type", "episodic"))
        start, end = _as_float(item.get("start_s")), _as_float(item.get("end_s"))
    else:
        c["policy_entries_invalid"] += 1
        return None
    if kind not in ("episodic", "semantic"):
        c["policy_entries_kind_coerced"] += 1
        kind = "episodic"
    text = " ".join(_CONTROL.sub(" ", text).split())
    if not text:
        c["policy_entries_empty"] += 1
        return None
    return ParsedEntry(kind=str(kind), text=text, start_s=start, end_s=end)

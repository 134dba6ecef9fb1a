"""Model output -> memory entries, robustly (the generic JSON repair is ``llm/json_repair.py``).

LLM output is untrusted input: thinking blocks, code fences, prose around the JSON,
trailing commas, output cut off at the token limit, empty or repeated entries. Each is
repaired where the intent is clear and otherwise rejected; every rejection is counted
(``policy_*`` counters in the memorizer's stats), so a drifting adapter shows up as a
number, not as silent memory loss.

Two output formats are read: a JSON memory list (Qwen3-VL, ``ENTRY_SCHEMA``) and, from a small
text LLM (``text_llm``), one memory per line as a bullet list (``- ...``), which a 135M model
follows where it cannot hold JSON; an output that starts with a bullet is read as lines.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from taskmem_ros.llm.json_repair import extract_json, strip_thinking

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

_WORDS = re.compile(r"[a-z0-9]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TEXT_KEYS = ("text", "memory", "content", "fact", "event")
BULLET_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+(.*)$")
_NONE_LINE = re.compile(r"^(?:none|nothing( new)?|no new (?:memories|facts))[.!]?$", re.I)


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


def bullet_items(text: str, *, cut: bool = False) -> tuple[list[str], bool] | None:
    """A bullet-list output -> (entry texts, repaired); None when the output is not one (its
    first non-empty line is no bullet). ``- none`` is the explicit empty list. Repaired: lines
    that are no bullet were skipped, or (``cut``: generation hit the token limit) the last,
    unfinished line was dropped."""
    rows = [line for line in text.strip().splitlines() if line.strip()]
    if not rows or BULLET_LINE.match(rows[0]) is None:
        return None
    if cut and len(rows) > 1:
        rows = rows[:-1]
    items, repaired = [], cut
    for line in rows:
        m = BULLET_LINE.match(line)
        if m is None:
            repaired = True
            continue
        body = m.group(1).strip()
        if not _NONE_LINE.match(body):
            items.append(body)
    return items, repaired


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
    cut: bool = False,
) -> ParseResult:
    """``cut``: the generation stopped at the token limit (a bullet list's last line is unfinished)."""
    res = ParseResult()
    c = res.counts
    c["policy_outputs"] += 1
    text, thought = strip_thinking(output or "")
    if thought:
        c["policy_think_stripped"] += 1
    lines = bullet_items(text, cut=cut)
    items: list[Any] | None
    if lines is not None:
        c["policy_line_outputs"] += 1
        items, repaired = list(lines[0]), lines[1]
    else:
        try:
            value, repaired = extract_json(text)
        except ValueError:
            c["policy_malformed_outputs"] += 1
            res.ok = False
            return res
        items = entry_items(value)
    if repaired:
        c["policy_repaired_outputs"] += 1
    if items is None:
        c["policy_malformed_outputs"] += 1
        res.ok = False
        return res
    seen = [normalise(t) for t in context]
    for item in items:
        entry = read_entry(item, c)
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


def entry_items(value: Any) -> list[Any] | None:
    """The list of entries in a decoded output (a bare list, ``{entries|memories|...: [...]}``
    or one entry object); None when the shape is not one of those."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in ("entries", "memories", "memory", "items"):
            if isinstance(value.get(key), list):
                return list(value[key])
        if any(k in value for k in _TEXT_KEYS):
            return [value]
    return None


def read_entry(item: Any, c: Counter[str]) -> ParsedEntry | None:
    """One entry from a string or object (text under any of ``_TEXT_KEYS``); None, counted
    in ``c``, when it has no usable text."""
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

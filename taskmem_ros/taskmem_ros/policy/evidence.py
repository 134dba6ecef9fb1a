"""A clip's perception evidence as text lines, for a text-only LLM policy (``text_llm``).

A text LM cannot see the keyframes, so the CPU perception stack (``policy.perception``: OCR,
faces, colours, scene changes, and whatever detectors it grows, e.g. objects) looks at them
and its findings reach the prompt as timestamped lines, next to the transcript. One function
(``clip_evidence``) is the only place that turns perception output into prompt text: every
draft the perception policy writes becomes a line, whatever its source, so a new detector's
output (detected objects) appears without touching the prompt.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from taskmem_ros.types import NS_PER_S, Clip, MemoryDraft

# perception sources shown as the evidence they are; speech has its own transcript section
_SKIP_SOURCES = frozenset({"asr"})


def evidence_lines(clip: Clip, drafts: Sequence[MemoryDraft]) -> list[str]:
    """``[start-end s] (source) text`` per perception finding, seconds from the clip start, in time order."""
    rows = []
    for d in drafts:
        if d.source in _SKIP_SOURCES or not d.text.strip():
            continue
        s = max(0.0, (d.start_ns - clip.start_ns) / NS_PER_S)
        e = max(s, (d.end_ns - clip.start_ns) / NS_PER_S)
        rows.append((s, e, f"[{s:.1f}-{e:.1f} s] ({d.source}) {d.text.strip()}"))
    return [line for _, _, line in sorted(rows, key=lambda r: (r[0], r[1]))]


class EvidenceReader:
    """Runs the perception detectors on clips and caches the lines per clip (Phase Two prompts
    the same clip several times; OCR is the costly part)."""

    def __init__(self, cfg: Any, *, cache_size: int = 512) -> None:
        from taskmem_ros.policy.perception.policy import PerceptionPolicy

        self.perception = PerceptionPolicy(cfg)
        self._cache: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __call__(self, clip: Clip) -> list[str]:
        return clip_evidence(clip, self)

    def lines(self, clip: Clip) -> list[str]:
        key = (clip.stream, clip.index, clip.start_ns, clip.end_ns, len(clip.keyframes))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return list(hit)
            found = evidence_lines(clip, self.perception.describe(clip))
            self._cache[key] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return list(found)

    def close(self) -> None:
        self.perception.close()


def clip_evidence(clip: Clip, reader: EvidenceReader | None) -> list[str]:
    """The evidence lines of ``clip`` (none without a reader): what the text LLM reads instead of video."""
    return reader.lines(clip) if reader is not None else []

"""Shared helpers for the store tests (imported by name; conftest modules are not importable twice)."""

from __future__ import annotations

from taskmem_ros.types import NS_PER_S, MemoryDraft


def drafts(texts: list[str], start_s: int = 0, step_s: int = 10) -> list[MemoryDraft]:
    """One draft per text on consecutive 10 s windows starting at ``start_s``."""
    return [
        MemoryDraft(t, start_ns=(start_s + i * step_s) * NS_PER_S, end_ns=(start_s + (i + 1) * step_s) * NS_PER_S)
        for i, t in enumerate(texts)
    ]

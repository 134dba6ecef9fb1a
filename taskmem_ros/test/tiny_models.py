"""Shared test data for the tiny Qwen3-VL checkpoints (fixtures live in conftest.py)."""

from __future__ import annotations

import json

import numpy as np

from taskmem_ros.types import Clip, TranscriptSegment, VideoFrame

TAUGHT_MEMORY = "A person in a dark coat walks along the corridor."
TAUGHT_RESPONSE = json.dumps({"entries": [{"kind": "episodic", "text": TAUGHT_MEMORY}]})


def synthetic_clip(index: int, speech: str = "", *, frames: int = 5, size: tuple[int, int] = (120, 160)) -> Clip:
    """A 10 s clip of random-noise keyframes (2 s apart) and an optional transcript line."""
    rng = np.random.default_rng(index)
    start = index * 10 * 10**9
    keyframes = [
        VideoFrame(start + k * 2 * 10**9, rng.integers(0, 255, (*size, 3), dtype=np.uint8)) for k in range(frames)
    ]
    transcript = [TranscriptSegment(start + 10**9, start + 3 * 10**9, speech)] if speech else []
    return Clip("robot", index, start, start + 10 * 10**9, keyframes=keyframes, transcript=transcript)

"""Scene changes between consecutive keyframes (colour-histogram distance) and motion level.

Keyframes arrive at ~1 fps, so "motion" is how much the view changed from one second to the
next: camera movement and moving objects alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from taskmem_ros.policy.perception.colors import color_fractions, describe
from taskmem_ros.policy.perception.ocr import thumbnail
from taskmem_ros.types import VideoFrame

STILL = 0.02  # mean abs thumbnail difference (0..1) below which the view is still
BUSY = 0.10  # above this, a lot is moving


def hsv_hist(rgb: np.ndarray) -> np.ndarray:
    """Normalised hue-saturation histogram plus a brightness histogram (grey scenes differ by V)."""
    hsv = cv2.cvtColor(cv2.resize(rgb, (160, 90), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
    hs = cv2.calcHist([hsv], [0, 1], None, [30, 16], [0, 180, 0, 256]).reshape(-1)
    v = cv2.calcHist([hsv], [2], None, [16], [0, 256]).reshape(-1)
    hist = np.concatenate([hs, v]).astype(np.float32)
    return hist / max(float(hist.sum()), 1.0)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance in [0, 1]: 0 same colours, 1 nothing in common."""
    return float(np.clip(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA), 0.0, 1.0))


@dataclass(frozen=True)
class SceneChange:
    stamp_ns: int
    distance: float
    before: str  # colour description of the view before, e.g. "mostly green"
    after: str


@dataclass
class SceneSummary:
    changes: list[SceneChange] = field(default_factory=list)
    motion: float = 0.0  # mean abs thumbnail difference between consecutive keyframes, 0..1

    @property
    def motion_label(self) -> str:
        return "still" if self.motion < STILL else "busy" if self.motion >= BUSY else "moving"


@dataclass(frozen=True)
class FrameSignature:
    """What scene analysis keeps of a keyframe, so the next clip can be compared to it."""

    stamp_ns: int
    hist: np.ndarray
    thumb: np.ndarray
    colors: str

    @classmethod
    def of(cls, kf: VideoFrame) -> FrameSignature:
        return cls(kf.stamp_ns, hsv_hist(kf.rgb), thumbnail(kf.rgb), describe(color_fractions(kf.rgb)))


def analyze_scene(
    keyframes: Sequence[VideoFrame], threshold: float, previous: FrameSignature | None = None
) -> tuple[SceneSummary, FrameSignature | None]:
    """Changes above ``threshold`` and the motion level; ``previous`` links to the prior clip."""
    sigs = [FrameSignature.of(kf) for kf in keyframes]
    if previous is not None and sigs and previous.stamp_ns < sigs[0].stamp_ns:
        sigs.insert(0, previous)
    summary = SceneSummary()
    diffs = []
    for a, b in itertools.pairwise(sigs):
        diffs.append(float(np.abs(a.thumb.astype(np.int16) - b.thumb.astype(np.int16)).mean()) / 255.0)
        dist = histogram_distance(a.hist, b.hist)
        if dist >= threshold:
            summary.changes.append(SceneChange(b.stamp_ns, dist, a.colors, b.colors))
    summary.motion = float(np.mean(diffs)) if diffs else 0.0
    return summary, (sigs[-1] if sigs else previous)

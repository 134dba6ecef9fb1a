"""Dominant colours named in plain words, from an HSV classification of a thumbnail.

Named bins (not k-means centroids) keep the output deterministic and the words stable from
clip to clip, which is what retrieval over "the green room" needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

COLOR_NAMES: tuple[str, ...] = (
    "black",
    "white",
    "grey",
    "red",
    "orange",
    "brown",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
)


def color_fractions(rgb: np.ndarray) -> dict[str, float]:
    """Share of the frame (0..1) falling in each named colour."""
    small = cv2.resize(rgb, (64, 36), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int16)
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]  # OpenCV: H 0..179, S/V 0..255
    chroma = s >= 50
    names = np.select(
        [
            v < 50,
            ~chroma & (v >= 200),
            ~chroma,
            (h < 8) | (h >= 170),
            (h < 20) & (v < 150),
            h < 20,
            h < 34,
            h < 85,
            h < 100,
            h < 130,
            h < 150,
        ],
        [0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10],
        default=11,
    )
    counts = np.bincount(names, minlength=len(COLOR_NAMES)) / float(names.size)
    return {name: float(c) for name, c in zip(COLOR_NAMES, counts, strict=True) if c > 0}


def mean_fractions(frames: Sequence[np.ndarray]) -> dict[str, float]:
    total: dict[str, float] = {}
    for rgb in frames:
        for name, f in color_fractions(rgb).items():
            total[name] = total.get(name, 0.0) + f / len(frames)
    return total


def dominant(fractions: dict[str, float], min_share: float = 0.2, top: int = 2) -> list[tuple[str, float]]:
    ranked = sorted(fractions.items(), key=lambda kv: (-kv[1], COLOR_NAMES.index(kv[0])))
    return [(n, f) for n, f in ranked[:top] if f >= min_share]


def describe(fractions: dict[str, float]) -> str:
    """'mostly green', 'green and grey' or 'mixed colours'."""
    dom = dominant(fractions)
    if not dom:
        return "mixed colours"
    if dom[0][1] >= 0.6 or len(dom) == 1:
        return f"mostly {dom[0][0]}"
    return f"{dom[0][0]} and {dom[1][0]}"

"""Text in view (signs, labels, screens) via rapidocr-onnxruntime, deduplicated over a clip.

OCR is the baseline's most expensive detector (~0.1-0.3 s per 640x360 keyframe on CPU), so
near-identical keyframes share one OCR pass and at most ``max_frames`` passes run per clip.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from taskmem_ros.streams.optional import require
from taskmem_ros.types import VideoFrame

DUPLICATE_DIFF = 3.0  # mean abs grey-level difference of 64x36 thumbnails below which frames are "the same"
MERGE_RATIO = 0.85  # OCR jitter ("EXlT 12" vs "EXIT 12") is merged above this similarity


@dataclass(frozen=True)
class TextHit:
    text: str
    confidence: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the frame


@dataclass
class TextSighting:
    """One distinct text over the clip: when it was first/last seen and in how many keyframes."""

    text: str
    confidence: float
    first_ns: int
    last_ns: int
    frames: int


def normalize_text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.casefold())


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """64x36 grey thumbnail, the shared cheap signature for duplicate/motion checks."""
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (64, 36), interpolation=cv2.INTER_AREA)


class TextReader:
    def __init__(self, min_confidence: float = 0.8, det_limit_side_len: int = 480, threads: int = 0) -> None:
        self.min_confidence = min_confidence
        self.det_limit_side_len = det_limit_side_len  # rapidocr's 736 default upsamples 360p 2x: 3x slower
        self.threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._engine is None:
            mod = require("rapidocr_onnxruntime", "rapidocr-onnxruntime", "policy.ocr")
            kwargs: dict[str, Any] = {"det_limit_side_len": self.det_limit_side_len}
            if self.threads > 0:
                kwargs["intra_op_num_threads"] = self.threads
            self._engine = mod.RapidOCR(**kwargs)
        return self._engine

    def read(self, rgb: np.ndarray) -> list[TextHit]:
        """Text lines in one RGB frame with confidence >= ``min_confidence``."""
        with self._lock:
            engine = self._load()
            result, _ = engine(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), use_cls=False)
        hits: list[TextHit] = []
        for box, text, score in result or []:
            text = normalize_text(str(text))
            if float(score) < self.min_confidence or len(_key(text)) < 2:
                continue
            pts = np.asarray(box, dtype=np.float32)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            hits.append(TextHit(text, float(score), (int(x0), int(y0), int(x1), int(y1))))
        return hits

    def read_clip(self, keyframes: Sequence[VideoFrame], max_frames: int = 4) -> list[TextSighting]:
        """Distinct texts across a clip's keyframes, in order of first appearance."""
        groups: list[list[VideoFrame]] = []
        last_thumb: np.ndarray | None = None
        for kf in keyframes:
            thumb = thumbnail(kf.rgb).astype(np.int16)
            if last_thumb is not None and groups and float(np.abs(thumb - last_thumb).mean()) < DUPLICATE_DIFF:
                groups[-1].append(kf)
            else:
                groups.append([kf])
            last_thumb = thumb
        if len(groups) > max_frames > 0:
            picks = np.unique(np.linspace(0, len(groups) - 1, max_frames).round().astype(int))
            groups = [groups[i] for i in picks]
        sightings: list[TextSighting] = []
        for group in groups if max_frames > 0 else []:
            for hit in self.read(group[0].rgb):
                self._merge(sightings, hit, group)
        return sightings

    @staticmethod
    def _merge(sightings: list[TextSighting], hit: TextHit, group: list[VideoFrame]) -> None:
        key = _key(hit.text)
        first, last = group[0].stamp_ns, group[-1].stamp_ns
        for s in sightings:
            if difflib.SequenceMatcher(None, _key(s.text), key).ratio() >= MERGE_RATIO:
                if hit.confidence > s.confidence:
                    s.text, s.confidence = hit.text, hit.confidence
                s.first_ns, s.last_ns = min(s.first_ns, first), max(s.last_ns, last)
                s.frames += len(group)
                return
        sightings.append(TextSighting(hit.text, hit.confidence, first, last, len(group)))

    def close(self) -> None:
        with self._lock:
            self._engine = None

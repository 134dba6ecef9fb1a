"""Plain data passed between the core stages (streams -> policy -> store -> answer).

Times are integer nanoseconds on the stream's clock (ROS header stamps), so a replayed
bag produces exactly the same memory as the live run did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MemoryKind = Literal["episodic", "semantic"]
MEMORY_KINDS: tuple[str, ...] = ("episodic", "semantic")

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class VideoFrame:
    """One decoded camera frame: RGB uint8, shape (H, W, 3)."""

    stamp_ns: int
    rgb: np.ndarray
    frame_id: str = ""


@dataclass(frozen=True)
class AudioBlock:
    """A block of mono float32 samples in [-1, 1] starting at ``stamp_ns``."""

    stamp_ns: int
    samples: np.ndarray
    rate: int

    @property
    def end_ns(self) -> int:
        return self.stamp_ns + int(len(self.samples) * NS_PER_S / self.rate)


@dataclass(frozen=True)
class TranscriptSegment:
    start_ns: int
    end_ns: int
    text: str
    confidence: float = 1.0


@dataclass(frozen=True)
class Detection:
    """One object a detector found in one keyframe (COCO label, score, box as image fractions).

    Kept on the clip (``Clip.detections``) so every policy - the perception baseline's
    templated sentences or an LLM's prompt - can use the same evidence.
    """

    label: str
    score: float
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1), fractions of width/height in [0, 1]
    stamp_ns: int  # the keyframe's stamp


@dataclass
class Clip:
    """A window of the stream handed to the memorization policy as one unit."""

    stream: str
    index: int
    start_ns: int
    end_ns: int
    keyframes: list[VideoFrame] = field(default_factory=list)
    audio: np.ndarray | None = None  # mono float32 at ``audio_rate``
    audio_rate: int = 16000
    speech_segments: list[tuple[int, int]] = field(default_factory=list)  # VAD (start_ns, end_ns)
    transcript: list[TranscriptSegment] = field(default_factory=list)
    run: str = ""  # the memorizer run (boot, replay) that cut it: identity is (stream, run, index)
    detections: list[Detection] = field(default_factory=list)  # per keyframe, filled by the object detector

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_S


@dataclass(frozen=True)
class MemoryDraft:
    """What a policy proposes to remember; the store turns it into a MemoryRecord."""

    text: str
    kind: MemoryKind = "episodic"
    start_ns: int = 0
    end_ns: int = 0
    source: str = ""  # which perception/model produced it, e.g. "ocr", "asr", "qwen3-vl"
    confidence: float = 1.0


@dataclass(frozen=True)
class MemoryRecord:
    """A committed memory entry as read back from the store."""

    id: int
    stream: str
    kind: str
    text: str
    start_ns: int
    end_ns: int
    source: str
    model_id: str
    adapter_id: str
    created_ns: int
    clip_id: int | None = None
    confidence: float = 1.0


@dataclass(frozen=True)
class ScoredMemory:
    record: MemoryRecord
    score: float


@dataclass
class PolicyContext:
    """What the policy knows besides the clip: recent memory (to avoid repeating it) and
    task-focus hints produced by Phase Two."""

    recent_memories: list[MemoryRecord] = field(default_factory=list)
    focus_hints: list[str] = field(default_factory=list)
    adapter_id: str = ""


@dataclass
class Answer:
    """Result of answering a task from memory only."""

    text: str
    abstained: bool
    evidence_ids: list[int] = field(default_factory=list)
    confidence: float = 0.0
    choice_index: int | None = None  # for multiple choice, which option was picked
    latency_s: float = 0.0

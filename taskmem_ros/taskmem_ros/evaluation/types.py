"""The common shape every benchmark loader produces, and the streaming runner consumes.

A benchmark is a set of *streams* (VideoMME: one per video; EgoLife: one per wearer;
EgoTempo: one per clip). Each stream is media segments on a stream clock (int ns) plus
questions that arrive at an ask time on that clock and are answered from memory as of then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class EvalQuestion:
    qid: str  # unique within the dataset (the benchmark's own id where it has one)
    dataset: str  # "videomme" | "egolife" | "egotempo"
    stream: str  # the memory stream it is asked on
    ask_ns: int  # stream-clock time the question arrives (answers see memory as of then)
    question: str
    choices: tuple[str, ...] = ()  # option texts without "A. " prefixes; () = open-ended
    answer: str = ""  # reference: the correct option's letter ("B") for MC, the answer text otherwise
    category: dict[str, str] = field(default_factory=dict)  # breakdown keys, e.g. {"duration": "short"}
    evidence_ns: tuple[tuple[int, int], ...] = ()  # known evidence windows on the stream clock
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answer_index(self) -> int | None:
        """Index of the correct choice for multiple choice, else None."""
        if not self.choices or len(self.answer) != 1 or not self.answer.isalpha():
            return None
        i = ord(self.answer.upper()) - ord("A")
        return i if 0 <= i < len(self.choices) else None


@dataclass(frozen=True)
class MediaSegment:
    """One video file placed on a stream's clock."""

    stream: str
    path: Path
    start_ns: int  # stream time of the file's first frame
    duration_ns: int = 0  # 0 = unknown until decoded
    subtitle: Path | None = None  # SRT with what is said (VideoMME), used as the transcript
    use_audio: bool = True  # decode the audio track for VAD/ASR


@dataclass(frozen=True)
class MissingMedia:
    stream: str
    path: Path
    reason: str  # "missing" | "unreadable: ..." | ...
    questions: tuple[str, ...] = ()  # qids that lose (part of) their evidence


@dataclass
class EvalDataset:
    name: str
    questions: list[EvalQuestion] = field(default_factory=list)
    media: list[MediaSegment] = field(default_factory=list)  # only segments that exist
    missing: list[MissingMedia] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # loader remarks (normalised fields, skipped records)

    def streams(self) -> list[str]:
        """Streams that have media, in a stable order."""
        return sorted({m.stream for m in self.media})

    def segments(self, stream: str) -> list[MediaSegment]:
        return sorted((m for m in self.media if m.stream == stream), key=lambda m: (m.start_ns, str(m.path)))

    def questions_for(self, stream: str) -> list[EvalQuestion]:
        return sorted((q for q in self.questions if q.stream == stream), key=lambda q: (q.ask_ns, q.qid))

    def media_report(self) -> str:
        """What is missing, in a few lines a user can act on."""
        if not self.missing:
            return f"{self.name}: all media present ({len(self.media)} files, {len(self.questions)} questions)"
        lost = {q for m in self.missing for q in m.questions}
        lines = [
            f"{self.name}: {len(self.missing)} media file(s) missing or unreadable; "
            f"{len(lost)} question(s) affected; running on the {len(self.media)} file(s) present"
        ]
        lines += [f"  {m.path} ({m.reason})" for m in self.missing[:20]]
        if len(self.missing) > 20:
            lines.append(f"  ... and {len(self.missing) - 20} more")
        return "\n".join(lines)


@dataclass
class EvalResult:
    """One answered (or abstained) question, as stored and reported."""

    qid: str
    dataset: str
    stream: str
    ask_ns: int
    question: str
    reference: str
    prediction: str
    abstained: bool
    correct: bool
    choice_index: int | None = None
    score: float | None = None  # judge score 0-5 (open-ended), None when not judged
    anls: float | None = None  # string similarity to the reference (open-ended)
    category: dict[str, str] = field(default_factory=dict)
    evidence_ids: list[int] = field(default_factory=list)
    latency_s: float = 0.0

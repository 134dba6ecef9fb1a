"""Voice activity detection: where in a clip someone speaks (silero-vad on CPU).

ASR runs only on the detected spans, which is both faster and more accurate than decoding a
whole clip of room noise; ``vad: none`` turns it off (ASR then decodes the whole clip).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Protocol

import numpy as np

from taskmem_ros.streams.audio import resample
from taskmem_ros.streams.optional import require

Span = tuple[float, float]  # (start_s, end_s) relative to the start of the samples


class VoiceActivityDetector(Protocol):
    def speech_segments(self, samples: np.ndarray, rate: int) -> list[Span]: ...

    def close(self) -> None: ...


class SileroVAD:
    """silero-vad (JIT model shipped inside the pip package; nothing is downloaded)."""

    name = "silero"

    def __init__(
        self,
        threshold: float = 0.5,
        min_speech_ms: int = 250,
        min_silence_ms: int = 300,  # shorter pauses stay inside one utterance, better for ASR
        speech_pad_ms: int = 150,
    ) -> None:
        self.threshold = threshold
        self.min_speech_ms = min_speech_ms
        self.min_silence_ms = min_silence_ms
        self.speech_pad_ms = speech_pad_ms
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load now (configure), not on the first clip: importing torch there would hold the GIL
        while the sensor callbacks of a replay are running."""
        self._load()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                torch = require("torch", "torch", "segmenter.vad='silero'")
                threads = torch.get_num_threads()
                silero = require("silero_vad", "silero-vad", "segmenter.vad='silero'")
                # silero_vad calls torch.set_num_threads(1) at import: without this, one VAD
                # import makes the policy LLM, MiniLM and training single-threaded process-wide
                torch.set_num_threads(threads)
                with warnings.catch_warnings():  # its loader uses APIs torch/importlib deprecate
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._model = silero.load_silero_vad(onnx=False)
            return self._model

    def speech_segments(self, samples: np.ndarray, rate: int) -> list[Span]:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if rate not in (8000, 16000):  # the model's only rates
            x, rate = resample(x, rate, 16000), 16000
        if x.size < rate // 10 or not np.any(x):
            return []
        model = self._load()
        torch = require("torch", "torch", "segmenter.vad='silero'")
        from silero_vad import get_speech_timestamps

        with torch.inference_mode():
            stamps = get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(x)),
                model,
                threshold=self.threshold,
                sampling_rate=rate,
                min_speech_duration_ms=self.min_speech_ms,
                min_silence_duration_ms=self.min_silence_ms,
                speech_pad_ms=self.speech_pad_ms,
            )
            model.reset_states()
        return [(s["start"] / rate, s["end"] / rate) for s in stamps]

    def close(self) -> None:
        with self._lock:
            self._model = None


def make_vad(name: str) -> VoiceActivityDetector | None:
    """``segmenter.vad`` -> detector; None for "none"."""
    if name == "none":
        return None
    if name == "silero":
        return SileroVAD()
    raise ValueError(f"segmenter.vad={name!r} is not available; expected 'silero' or 'none'")

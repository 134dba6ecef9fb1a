"""Attaches VAD speech spans and a transcript to each finished clip.

Runs on the memorizer's worker thread (ASR costs ~0.1-0.5 s per utterance on CPU), never in
a sensor callback. Models load on first use and are freed by ``close``.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from taskmem_ros.config import AsrConfig, SegmenterConfig
from taskmem_ros.errors import MissingDependencyError, ModelFileError
from taskmem_ros.streams.asr import SpeechRecognizer, make_asr
from taskmem_ros.streams.vad import VoiceActivityDetector, make_vad
from taskmem_ros.types import NS_PER_S, Clip

log = logging.getLogger(__name__)

SILENCE_RMS = 1e-4  # below this (about -80 dBFS) a clip is not worth a VAD/ASR pass


class SpeechPipeline:
    def __init__(
        self,
        cfg: SegmenterConfig,
        *,
        vad: VoiceActivityDetector | None = None,
        asr: SpeechRecognizer | None = None,
        asr_cfg: AsrConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.vad = vad if vad is not None else make_vad(cfg.vad)
        self.asr = asr if asr is not None else make_asr(cfg.asr, asr_cfg)
        self._stats: Counter[str] = Counter()

    @property
    def stats(self) -> Counter[str]:
        """The pipeline's counters plus the recogniser's own (resampled, clipped, split, dropped)."""
        return self._stats + Counter(getattr(self.asr, "stats", {}))

    def warm_up(self) -> None:
        """Load the models now (a lifecycle node's configure): a bad model file fails there, and
        no model import competes with the sensor callbacks once data flows."""
        for part in (self.vad, self.asr):
            load = getattr(part, "load", None)
            if load is not None:
                load()

    @property
    def enabled(self) -> bool:
        return self.vad is not None or self.asr is not None

    def annotate(self, clip: Clip) -> Clip:
        """Fill ``clip.speech_segments`` and ``clip.transcript`` in place (and return the clip).

        A missing package or model file raises (a setup error worth stopping for);
        any other failure is logged and counted, and the clip goes on without speech.
        """
        if not self.enabled or clip.audio is None or clip.audio.size == 0:
            return clip
        audio = clip.audio
        if float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
            self._stats["clips_silent"] += 1
            return clip
        try:
            spans = None
            if self.vad is not None:
                spans = self.vad.speech_segments(audio, clip.audio_rate)
                clip.speech_segments = [
                    (clip.start_ns + round(a * NS_PER_S), clip.start_ns + round(b * NS_PER_S)) for a, b in spans
                ]
                self._stats["speech_segments"] += len(spans)
            if self.asr is not None and (spans is None or spans):
                clip.transcript = self.asr.transcribe(audio, clip.audio_rate, spans, offset_ns=clip.start_ns)
                self._stats["transcript_segments"] += len(clip.transcript)
        except (MissingDependencyError, ModelFileError):
            raise
        except Exception:
            log.exception("speech processing failed for clip %d of %s", clip.index, clip.stream)
            self._stats["speech_errors"] += 1
        self._stats["clips_annotated"] += 1
        return clip

    def close(self) -> None:
        for part in (self.vad, self.asr):
            if part is not None:
                part.close()

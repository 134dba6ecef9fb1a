"""VAD + pocketsphinx ASR on real synthetic speech (espeak-ng), through the pipeline the memorizer
runs (Whisper, the default where installed, is tested in test_whisper_asr.py)."""

from __future__ import annotations

import numpy as np
import pytest

from taskmem_ros.config import SegmenterConfig
from taskmem_ros.errors import MissingDependencyError
from taskmem_ros.streams.asr import PocketSphinxASR, make_asr, register_asr
from taskmem_ros.streams.audio import resample
from taskmem_ros.streams.optional import require
from taskmem_ros.streams.speech import SpeechPipeline
from taskmem_ros.streams.vad import SileroVAD, make_vad
from taskmem_ros.types import NS_PER_S, Clip, TranscriptSegment

START = 50 * NS_PER_S


def clip_with(speech: np.ndarray, at_s: float = 2.0, seconds: float = 10.0) -> Clip:
    audio = np.zeros(int(seconds * 16000), np.float32)
    i = int(at_s * 16000)
    audio[i : i + speech.size] = speech
    return Clip("robot", 0, START, START + int(seconds * NS_PER_S), audio=audio, audio_rate=16000)


@pytest.fixture(scope="module")
def pipeline():
    sp = SpeechPipeline(SegmenterConfig(asr="pocketsphinx"))
    yield sp
    sp.close()


def test_vad_finds_the_spoken_span(espeak):
    speech = espeak("my keys are in the kitchen drawer")
    spans = SileroVAD().speech_segments(clip_with(speech).audio, 16000)
    assert len(spans) == 1
    start, end = spans[0]
    assert 1.7 <= start <= 2.2 and abs(end - (2.0 + speech.size / 16000)) < 0.5


def test_vad_hears_nothing_in_noise_and_tone():
    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal(16000 * 4)).astype(np.float32)
    tone = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(16000 * 2) / 16000)).astype(np.float32)
    assert SileroVAD().speech_segments(np.concatenate([noise, tone]), 16000) == []


def test_asr_recognises_the_key_words_of_a_sentence(espeak, pipeline):
    clip = pipeline.annotate(clip_with(espeak("the red key is in the kitchen drawer", speed=130)))
    assert len(clip.speech_segments) == 1 and len(clip.transcript) == 1
    seg = clip.transcript[0]
    words = set(seg.text.split())
    assert len(words & {"red", "key", "kitchen", "drawer"}) >= 3, seg.text
    assert clip.start_ns + 1.5 * NS_PER_S <= seg.start_ns < seg.end_ns <= clip.start_ns + 5 * NS_PER_S
    assert 0.0 < seg.confidence <= 1.0


def test_asr_is_deterministic_whatever_came_before(espeak):
    speech = espeak("my keys are in the kitchen drawer", speed=150)
    asr = PocketSphinxASR()
    first = asr.transcribe(speech, 16000)
    asr.transcribe(espeak("the blue box is under the bed"), 16000)  # decoder state must not carry over
    again = asr.transcribe(speech, 16000)
    assert first == again and {"keys", "kitchen", "drawer"} <= set(first[0].text.split())


def test_asr_accepts_8khz_audio(espeak):
    # The bundled en-us model is wideband: 8 kHz input is upsampled and recognised worse,
    # so only timing and a non-empty result are asserted here.
    speech = resample(espeak("my keys are in the kitchen drawer"), 16000, 8000)
    (seg,) = PocketSphinxASR().transcribe(speech, 8000, [(0.0, speech.size / 8000)], offset_ns=7)
    assert seg.text and seg.start_ns == 7 and abs(seg.end_ns - 7 - speech.size / 8000 * NS_PER_S) < 1e6


def test_silent_clip_skips_vad_and_asr(pipeline):
    clip = pipeline.annotate(Clip("robot", 0, START, START + 10 * NS_PER_S, audio=np.zeros(160000, np.float32)))
    assert clip.speech_segments == [] and clip.transcript == []
    assert pipeline.stats["clips_silent"] >= 1


def test_without_vad_asr_decodes_the_whole_clip(espeak):
    sp = SpeechPipeline(SegmenterConfig(vad="none", asr="pocketsphinx"))
    clip = sp.annotate(clip_with(espeak("my keys are in the kitchen drawer"), at_s=0.5, seconds=4.0))
    assert clip.speech_segments == [] and len(clip.transcript) == 1
    # one 4 s utterance with silence around it decodes worse than the VAD span ("my keys are ...")
    assert clip.transcript[0].start_ns == START and {"my", "keys"} <= set(clip.transcript[0].text.split())


def test_none_disables_speech_processing(espeak):
    sp = SpeechPipeline(SegmenterConfig(vad="none", asr="none"))
    assert not sp.enabled and make_vad("none") is None and make_asr("none") is None
    clip = sp.annotate(clip_with(espeak("hello there")))
    assert clip.speech_segments == [] and clip.transcript == []


def test_other_recognisers_plug_in_by_name(espeak):
    class Echo:  # a recogniser of our own making, as a Whisper backend would register
        name = "echo"

        def transcribe(self, samples, rate, segments=None, *, offset_ns=0):
            return [
                TranscriptSegment(offset_ns + int(a * NS_PER_S), offset_ns + int(b * NS_PER_S), "echo")
                for a, b in segments or []
            ]

        def close(self) -> None:
            pass

    register_asr("echo", Echo)
    sp = SpeechPipeline(SegmenterConfig(), asr=make_asr("echo"))
    clip = sp.annotate(clip_with(espeak("my keys are in the kitchen drawer")))
    assert [t.text for t in clip.transcript] == ["echo"]
    assert clip.transcript[0].start_ns == clip.speech_segments[0][0]
    with pytest.raises(ValueError, match=r"segmenter\.asr='whisper-xl' is not available"):
        make_asr("whisper-xl")


def test_missing_package_error_names_the_pip_package():
    with pytest.raises(
        MissingDependencyError, match=r"needs the Python package 'no-such-pkg' \(pip install no-such-pkg\)"
    ):
        require("no_such_module_xyz", "no-such-pkg", "segmenter.asr='x'")

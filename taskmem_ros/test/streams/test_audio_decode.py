"""PCM decoding: formats, downmix, resampling, and the bad payloads that must be refused."""

from __future__ import annotations

import numpy as np
import pytest

from taskmem_ros.streams.audio import (
    AUDIO_FORMATS,
    AudioDecodeError,
    decode_audio,
    encode_audio,
    resample,
)


def _sine(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
@pytest.mark.parametrize("channels", [1, 2])
def test_every_format_round_trips(fmt, channels):
    x = _sine(440, 16000)
    block = decode_audio(encode_audio(x, fmt, channels), fmt, channels, 16000, stamp_ns=123, target_rate=16000)
    assert block.rate == 16000 and block.stamp_ns == 123 and block.samples.dtype == np.float32
    tol = 1.0 / 100 if fmt in ("U8", "S8") else 1e-4
    np.testing.assert_allclose(block.samples, x, atol=tol)


def test_stereo_is_downmixed_to_mono():
    left, right = _sine(440, 16000), np.zeros(8000, np.float32)
    pcm = (np.stack([left, right], axis=1) * 32767).astype("<i2").tobytes()
    block = decode_audio(pcm, "S16LE", 2, 16000, target_rate=16000)
    np.testing.assert_allclose(block.samples, left / 2, atol=1e-4)


@pytest.mark.parametrize("src", [44100, 48000, 22050, 8000])
def test_resampling_keeps_pitch_and_duration(src):
    x = _sine(440, src, seconds=1.0)
    block = decode_audio(encode_audio(x, "F32LE"), "F32LE", 1, src, target_rate=16000)
    assert abs(block.samples.size - 16000) <= 1
    assert abs(_peak_hz(block.samples, 16000) - 440) < 3
    assert 0.4 < float(np.abs(block.samples[1000:-1000]).max()) < 0.6


def test_resample_is_identity_at_same_rate():
    x = _sine(300, 16000)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_drop_the_block(bad):
    x = _sine(440, 16000)
    x[100] = bad
    with pytest.raises(AudioDecodeError, match=r"1 NaN/inf sample\(s\); block dropped"):
        decode_audio(x.astype("<f4").tobytes(), "F32LE", 1, 16000)


@pytest.mark.parametrize(("fmt", "channels", "nbytes"), [("S16LE", 1, 1001), ("S16LE", 2, 1002), ("F32LE", 1, 10)])
def test_truncated_buffer_is_rejected(fmt, channels, nbytes):
    with pytest.raises(AudioDecodeError, match=r"truncated audio buffer: .* not a multiple of the frame size"):
        decode_audio(b"\0" * nbytes, fmt, channels, 16000)


def test_unsupported_format_lists_the_valid_ones():
    with pytest.raises(AudioDecodeError, match=r"unsupported audio format 'paFormat16'; supported: S16LE"):
        decode_audio(b"\0\0", "paFormat16", 1, 16000)


@pytest.mark.parametrize("channels", [0, -1, 1.5])
def test_bad_channel_count_is_rejected(channels):
    with pytest.raises(AudioDecodeError, match=r"channels=.* is invalid"):
        decode_audio(b"\0\0", "S16LE", channels, 16000)


@pytest.mark.parametrize("rate", [0, -16000, 10**6, 16000.5])
def test_wrong_rate_is_rejected(rate):
    with pytest.raises(AudioDecodeError, match=r"sample rate .* is unsupported"):
        decode_audio(b"\0\0", "S16LE", 1, rate)


def test_format_names_are_case_insensitive_and_lists_accepted():
    block = decode_audio(list(encode_audio(np.array([0.5, -0.5]), "S16LE")), "s16le", 1, 16000)
    np.testing.assert_allclose(block.samples, [0.5, -0.5], atol=1e-4)

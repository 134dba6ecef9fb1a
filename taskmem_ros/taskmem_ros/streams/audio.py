"""Raw PCM message payloads -> mono float32 AudioBlocks at the segmenter's rate.

VAD and ASR only accept 8/16 kHz mono, so every microphone format is normalised here, once,
at the edge; bad payloads raise AudioDecodeError so the caller can drop and count them.
"""

from __future__ import annotations

from math import gcd
from typing import Any

import numpy as np

from taskmem_ros.types import AudioBlock

MIN_RATE = 1000
MAX_RATE = 384000


class AudioDecodeError(ValueError):
    """An audio payload cannot be turned into samples; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# name -> (numpy dtype, scale to [-1, 1], offset subtracted before scaling)
_FORMATS: dict[str, tuple[str, float, float]] = {
    "S16LE": ("<i2", 32768.0, 0.0),
    "S16BE": (">i2", 32768.0, 0.0),
    "S32LE": ("<i4", 2147483648.0, 0.0),
    "S32BE": (">i4", 2147483648.0, 0.0),
    "F32LE": ("<f4", 1.0, 0.0),
    "F32BE": (">f4", 1.0, 0.0),
    "F64LE": ("<f8", 1.0, 0.0),
    "F64BE": (">f8", 1.0, 0.0),
    "S8": ("i1", 128.0, 0.0),
    "U8": ("u1", 128.0, 128.0),
    "S24LE": ("S24LE", 8388608.0, 0.0),  # packed 3-byte samples, unpacked by hand
}
AUDIO_FORMATS: tuple[str, ...] = tuple(_FORMATS)


def frame_bytes(format: str, channels: int) -> int:
    dtype = _FORMATS[format][0]
    return (3 if dtype == "S24LE" else np.dtype(dtype).itemsize) * channels


def _raw_samples(buf: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "S24LE":
        b = buf.reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(v >= 1 << 23, v - (1 << 24), v)
    return buf.view(dtype)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy) with an anti-aliasing filter; linear interpolation without scipy."""
    x = np.asarray(samples, dtype=np.float32)
    if src_rate == dst_rate or x.size == 0:
        return x
    g = gcd(int(src_rate), int(dst_rate))
    up, down = dst_rate // g, src_rate // g
    try:
        from scipy.signal import resample_poly
    except ImportError:  # scipy is optional; linear is fine for speech at these rates
        n_out = round(x.size * dst_rate / src_rate)
        t = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
        return np.interp(t, np.arange(x.size), x).astype(np.float32)
    return np.asarray(resample_poly(x, up, down), dtype=np.float32)


def decode_audio(
    data: Any,
    format: str,
    channels: int,
    rate: int,
    stamp_ns: int = 0,
    target_rate: int = 16000,
) -> AudioBlock:
    """Interleaved PCM bytes -> mono float32 AudioBlock at ``target_rate``.

    Raises AudioDecodeError for unknown formats, bad channel counts or rates, a buffer that is
    not a whole number of frames (truncated), and NaN/inf samples (the block is dropped whole,
    since a partly valid block would put silence where the sound was).
    """
    fmt = str(format).strip().upper()
    if fmt not in _FORMATS:
        raise AudioDecodeError(f"unsupported audio format {format!r}; supported: {', '.join(AUDIO_FORMATS)}")
    if not isinstance(channels, (int, np.integer)) or channels <= 0:
        raise AudioDecodeError(f"channels={channels!r} is invalid; expected an integer >= 1")
    if not isinstance(rate, (int, np.integer)) or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioDecodeError(
            f"sample rate {rate!r} Hz is unsupported; expected an integer in [{MIN_RATE}, {MAX_RATE}]"
        )
    if not isinstance(target_rate, (int, np.integer)) or not MIN_RATE <= target_rate <= MAX_RATE:
        raise AudioDecodeError(f"target rate {target_rate!r} Hz is unsupported; expected [{MIN_RATE}, {MAX_RATE}]")
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        try:
            buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        except TypeError:  # a plain list of byte values from a generic deserializer
            buf = np.asarray(data, dtype=np.uint8).reshape(-1)
    fb = frame_bytes(fmt, int(channels))
    if buf.size % fb:
        raise AudioDecodeError(
            f"truncated audio buffer: {buf.size} bytes is not a multiple of the frame size {fb} "
            f"({fmt}, {channels} channel(s))"
        )
    dtype, scale, offset = _FORMATS[fmt]
    raw = _raw_samples(buf, dtype).reshape(-1, int(channels))
    x = raw.astype(np.float32)
    if offset:
        x -= offset
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioDecodeError(f"audio block has {bad} NaN/inf sample(s); block dropped")
    mono = x.mean(axis=1) if channels > 1 else x[:, 0]
    if scale != 1.0:
        mono = mono / scale
    mono = np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
    return AudioBlock(
        stamp_ns=int(stamp_ns), samples=resample(mono, int(rate), int(target_rate)), rate=int(target_rate)
    )


def encode_audio(samples: np.ndarray, format: str = "S16LE", channels: int = 1) -> bytes:
    """Mono float samples in [-1, 1] -> interleaved PCM bytes (tests, recorders)."""
    fmt = format.upper()
    dtype, scale, offset = _FORMATS[fmt]
    x = np.repeat(np.asarray(samples, dtype=np.float64)[:, None], channels, axis=1).reshape(-1)
    if scale != 1.0:
        hi = scale - 1 + offset
        x = np.clip(np.round(x * scale + offset), -scale + offset, hi)
    if dtype == "S24LE":
        v = x.astype(np.int32) & 0xFFFFFF
        return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    return x.astype(dtype).tobytes()

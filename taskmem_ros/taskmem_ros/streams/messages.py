"""Message -> core conversions, shared by live rclpy topics and rosbags replay.

rclpy messages and rosbags-deserialized messages have the same field names and both expose
``data`` through the buffer protocol, so one decoder serves both without importing ROS.
Images are validated eagerly (cheap header/size checks, so malformed frames are counted
whether or not they would be kept) and decoded lazily: only keyframes pay for pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from taskmem_ros.streams.audio import AudioDecodeError, decode_audio
from taskmem_ros.streams.image_codec import (
    ImageDecodeError,
    decode_compressed_image,
    decode_raw_image,
    validate_compressed_image,
    validate_raw_image,
)
from taskmem_ros.types import NS_PER_S, AudioBlock, VideoFrame

IMAGE_TYPES = ("sensor_msgs/msg/Image",)
COMPRESSED_TYPES = ("sensor_msgs/msg/CompressedImage",)
AUDIO_TYPES = ("taskmem_interfaces/msg/AudioChunk", "audio_common_msgs/msg/AudioStamped")

# audio_common_msgs/AudioInfo.format is a PortAudio sample-format code:
# code -> (AudioData field holding the samples, our format name)
PORTAUDIO_FORMATS: dict[int, tuple[str, str]] = {
    0x01: ("float32_data", "F32LE"),
    0x02: ("int32_data", "S32LE"),
    0x04: ("int24_data", "S32LE"),
    0x08: ("int16_data", "S16LE"),
    0x10: ("int8_data", "S8"),
    0x20: ("uint8_data", "U8"),
}

LazyDecode = Callable[[int | None], np.ndarray]  # max_pixels -> RGB uint8


def time_to_ns(t: Any) -> int:
    return int(t.sec) * NS_PER_S + int(t.nanosec)


def image_source(msg: Any) -> tuple[int, LazyDecode, str]:
    """sensor_msgs/Image -> (stamp, decode, frame_id); ImageDecodeError now if the fields are bad."""
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    validate_raw_image(len(msg.data), width, height, msg.encoding, step)
    data, encoding, bigendian = msg.data, msg.encoding, bool(msg.is_bigendian)

    def decode(max_pixels: int | None) -> np.ndarray:
        return decode_raw_image(data, width, height, encoding, step, bigendian, max_pixels=max_pixels)

    return time_to_ns(msg.header.stamp), decode, msg.header.frame_id


def compressed_source(msg: Any) -> tuple[int, LazyDecode, str]:
    """sensor_msgs/CompressedImage -> (stamp, decode, frame_id). The container is checked now
    (markers, size: every frame, cheaply); a keyframe whose pixels are corrupt fails at decode."""
    data, fmt = msg.data, msg.format
    validate_compressed_image(data, fmt)

    def decode(max_pixels: int | None) -> np.ndarray:
        return decode_compressed_image(data, fmt, max_pixels=max_pixels)

    return time_to_ns(msg.header.stamp), decode, msg.header.frame_id


def count_rejection(counts: dict[str, int], exc: ImageDecodeError | AudioDecodeError) -> None:
    """One place for the drop counters of live topics and bag replay: the total and, for
    images, one counter per reason (``frames_rejected_truncated``, ``..._corrupt``, ...)."""
    if isinstance(exc, ImageDecodeError):
        counts["frames_rejected"] = counts.get("frames_rejected", 0) + 1
        key = f"frames_rejected_{exc.kind}"
    else:
        key = "audio_rejected"
    counts[key] = counts.get(key, 0) + 1


def image_to_frame(msg: Any, *, max_pixels: int | None = None) -> VideoFrame:
    """sensor_msgs/Image -> VideoFrame, decoded now; raises ImageDecodeError on bad data."""
    stamp, decode, frame_id = image_source(msg)
    return VideoFrame(stamp_ns=stamp, rgb=decode(max_pixels), frame_id=frame_id)


def compressed_to_frame(msg: Any, *, max_pixels: int | None = None) -> VideoFrame:
    """sensor_msgs/CompressedImage -> VideoFrame, decoded now; raises ImageDecodeError."""
    stamp, decode, frame_id = compressed_source(msg)
    return VideoFrame(stamp_ns=stamp, rgb=decode(max_pixels), frame_id=frame_id)


def audio_to_block(msg: Any, target_rate: int | None = None) -> AudioBlock:
    """AudioChunk or audio_common_msgs/AudioStamped -> mono float32 AudioBlock at ``target_rate``
    (default: the message's own rate); raises AudioDecodeError on bad data."""
    stamp = time_to_ns(msg.header.stamp)
    if hasattr(msg, "audio"):  # audio_common: typed arrays selected by a PortAudio format code
        info = msg.audio.info
        spec = PORTAUDIO_FORMATS.get(int(info.format))
        if spec is None:
            raise AudioDecodeError(f"unsupported audio_common_msgs format code {info.format}")
        field_name, fmt = spec
        values = np.asarray(getattr(msg.audio.audio_data, field_name))
        if field_name == "int24_data":  # 24-bit values in int32 slots: scale up to full S32
            values = values.astype(np.int32) << 8
        rate, channels = int(info.rate), int(info.channels)
        return decode_audio(values.tobytes(), fmt, channels, rate, stamp, int(target_rate or rate))
    rate = int(msg.rate)
    return decode_audio(msg.data, msg.format, int(msg.channels), rate, stamp, int(target_rate or rate))


def to_core(msgtype: str, msg: Any, *, audio_rate: int | None = None) -> VideoFrame | AudioBlock | None:
    """Decode a message of a known type into the core type it feeds (None for other types)."""
    if msgtype in IMAGE_TYPES:
        return image_to_frame(msg)
    if msgtype in COMPRESSED_TYPES:
        return compressed_to_frame(msg)
    if msgtype in AUDIO_TYPES:
        return audio_to_block(msg, audio_rate)
    return None

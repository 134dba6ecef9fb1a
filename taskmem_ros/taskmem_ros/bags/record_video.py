"""Turn a video file (+ optional WAV) into a rosbag2 that looks like a robot recording.

Demos, tests and benchmarks replay the same bag through the same nodes as a live robot, so
they exercise the real message path (sensor_msgs/Image, CompressedImage, AudioChunk) instead
of a shortcut. Stamps are derived from frame/sample indices and a fixed start time, so the
same inputs always give the same bag contents (and hence the same memories).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import wave
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from taskmem_ros.bags.errors import BagError
from taskmem_ros.bags.typestore import (
    AUDIO_CHUNK_MSGTYPE,
    COMPRESSED_IMAGE_MSGTYPE,
    IMAGE_MSGTYPE,
    default_typestore,
)

NS_PER_S = 1_000_000_000
# 2023-11-14T22:13:20Z: a fixed, plausible wall-clock start so bags are byte-for-byte reproducible
# in content and still look like real recordings to tools that print dates.
DEFAULT_START_NS = 1_700_000_000 * NS_PER_S
DEFAULT_FALLBACK_FPS = 30.0
AUDIO_FORMATS = ("S16LE", "S32LE", "F32LE")
ENCODINGS = ("rgb8", "bgr8")
STORAGES = ("sqlite3", "mcap")


@dataclass(frozen=True)
class RecordSummary:
    """What ended up in the bag (for logs, tests and the demo's README numbers)."""

    bag_path: str
    storage: str
    image_topic: str
    image_msgtype: str
    frames: int
    width: int
    height: int
    source_fps: float
    start_ns: int
    end_ns: int
    audio_topic: str | None = None
    audio_chunks: int = 0
    audio_rate: int = 0
    audio_channels: int = 0
    audio_frames: int = 0

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_S


@dataclass(frozen=True)
class _Wav:
    samples: np.ndarray  # (n_frames, channels), int16/int32 or float32
    rate: int
    channels: int
    sampwidth: int
    raw_s16: bytes | None  # original bytes when already S16LE, for an exact round trip


def read_wav(path: str | Path) -> _Wav:
    """Read a PCM WAV with the stdlib (any rate, mono/stereo, 8/16/24/32-bit)."""
    try:
        with wave.open(str(path), "rb") as wf:
            channels, width, rate, n = wf.getnchannels(), wf.getsampwidth(), wf.getframerate(), wf.getnframes()
            raw = wf.readframes(n)
    except (OSError, EOFError, wave.Error) as exc:
        hint = " (only integer PCM WAV is supported; convert with `sox in.wav -b 16 out.wav`)"
        raise BagError(path, f"cannot read WAV: {exc}{hint}") from None
    n = len(raw) // (width * channels)
    raw = raw[: n * width * channels]
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.int16) - 128) * 256
    elif width == 2:
        samples = np.frombuffer(raw, "<i2")
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.uint32)
        # place the 24 bits at the top of an int32: sign-correct and full-scale like S32
        samples = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)).view(np.int32)
    elif width == 4:
        samples = np.frombuffer(raw, "<i4")
    else:
        raise BagError(path, f"unsupported WAV sample width {width} bytes")
    return _Wav(samples.reshape(n, channels), rate, channels, width, raw if width == 2 else None)


def _to_format(wav: _Wav, start: int, stop: int, fmt: str) -> bytes:
    """Interleaved bytes of frames [start, stop) in ``fmt``; S16 input passes through untouched."""
    if fmt == "S16LE":
        if wav.raw_s16 is not None:
            bpf = 2 * wav.channels
            return wav.raw_s16[start * bpf : stop * bpf]
        block = wav.samples[start:stop]
        if block.dtype == np.int32:
            block = block >> 16
        return np.ascontiguousarray(block, dtype="<i2").tobytes()
    if fmt == "S32LE":
        block = wav.samples[start:stop].astype(np.int32)
        if wav.samples.dtype == np.int16:
            block = block << 16
        return block.astype("<i4").tobytes()
    scale = 32768.0 if wav.samples.dtype == np.int16 else 2147483648.0
    return (wav.samples[start:stop].astype(np.float32) / np.float32(scale)).astype("<f4").tobytes()


def _frame_stamp(start_ns: int, index: int, fps: float) -> int:
    return start_ns + round(index * NS_PER_S / fps)


def _keep_frame(index: int, src_fps: float, fps: float | None) -> bool:
    """Decimate evenly: keep a frame whenever the output-rate bucket advances."""
    if fps is None or fps >= src_fps:
        return True
    return index == 0 or math.floor(index * fps / src_fps) > math.floor((index - 1) * fps / src_fps)


def _make_header(types: dict[str, Any], stamp_ns: int, frame_id: str) -> Any:
    sec, nsec = divmod(stamp_ns, NS_PER_S)
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame_id
    )


def _video_frames(cap: Any, max_frames: int | None, src_fps: float, fps: float | None) -> Iterator[tuple[int, Any]]:
    index = -1
    kept = 0
    while max_frames is None or kept < max_frames:
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        index += 1
        if _keep_frame(index, src_fps, fps):
            kept += 1
            yield index, frame


def record_video(
    video_path: str | Path,
    bag_path: str | Path,
    *,
    audio_path: str | Path | None = None,
    image_topic: str = "/camera/image_raw",
    audio_topic: str = "/audio/audio",
    compressed: bool = False,
    encoding: Literal["rgb8", "bgr8"] = "rgb8",
    fps: float | None = None,
    max_frames: int | None = None,
    start_ns: int = DEFAULT_START_NS,
    storage: Literal["sqlite3", "mcap"] = "sqlite3",
    audio_chunk_ms: float = 100.0,
    audio_format: Literal["S16LE", "S32LE", "F32LE"] = "S16LE",
    frame_id: str = "camera",
    audio_frame_id: str = "microphone",
    jpeg_quality: int = 90,
    clip_audio_to_video: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> RecordSummary:
    """Write ``video_path`` (and ``audio_path``) into a new rosbag2 at ``bag_path``.

    Frames become ``sensor_msgs/Image`` (or ``CompressedImage`` JPEG on ``<topic>/compressed``),
    stamped at their source-frame time even when subsampled with ``fps``; the WAV becomes
    ``AudioChunk`` messages of ``audio_chunk_ms``. Log time == header stamp, messages are
    written in stamp order, and audio is cut at the end of the video span unless
    ``clip_audio_to_video`` is False. Raises :class:`BagError` on unusable inputs.
    """
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    if encoding not in ENCODINGS:
        raise ValueError(f"encoding={encoding!r}; expected one of {ENCODINGS}")
    if storage not in STORAGES:
        raise ValueError(f"storage={storage!r}; expected one of {STORAGES}")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format={audio_format!r}; expected one of {AUDIO_FORMATS}")
    if fps is not None and fps <= 0:
        raise ValueError(f"fps={fps!r}; expected > 0")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames={max_frames!r}; expected >= 1")
    if audio_chunk_ms <= 0:
        raise ValueError(f"audio_chunk_ms={audio_chunk_ms!r}; expected > 0")

    video_path, bag = Path(video_path), Path(bag_path)
    if not video_path.is_file():
        raise BagError(video_path, "video file does not exist")
    wav = read_wav(audio_path) if audio_path is not None else None

    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise BagError(video_path, "OpenCV cannot open this video (unsupported codec or not a video)")
    src_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not math.isfinite(src_fps) or src_fps <= 0:
        src_fps = DEFAULT_FALLBACK_FPS
    n_src = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    expected = n_src if fps is None or fps >= src_fps else math.ceil(n_src * fps / src_fps)
    if max_frames is not None:
        expected = min(expected, max_frames) if expected > 0 else max_frames

    if bag.exists():
        if not overwrite:
            cap.release()
            raise BagError(bag, "already exists (pass overwrite=True / --overwrite to replace it)")
        shutil.rmtree(bag) if bag.is_dir() else bag.unlink()

    store = default_typestore()
    types = store.types
    img_topic = image_topic.rstrip("/") + "/compressed" if compressed else image_topic
    img_type = COMPRESSED_IMAGE_MSGTYPE if compressed else IMAGE_MSGTYPE

    frames = width = height = 0
    chunks = audio_written = 0
    span_end = start_ns
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    try:
        writer.set_custom_data("taskmem.source_video", video_path.name)
        if audio_path is not None:
            writer.set_custom_data("taskmem.source_audio", Path(audio_path).name)
        writer.open()
        img_conn = writer.add_connection(img_topic, img_type, typestore=store)
        aud_conn = writer.add_connection(audio_topic, AUDIO_CHUNK_MSGTYPE, typestore=store) if wav is not None else None
        chunk_frames = max(1, round(wav.rate * audio_chunk_ms / 1000.0)) if wav is not None else 0
        n_audio = len(wav.samples) if wav is not None else 0
        next_audio = 0  # next audio frame index to write

        def write_audio_until(limit_ns: int, *, inclusive: bool, cut: bool) -> None:
            """Write chunks stamped before ``limit_ns``; with ``cut`` trim the last one to end there."""
            nonlocal next_audio, chunks, audio_written
            assert wav is not None and aud_conn is not None
            while next_audio < n_audio:
                stamp = start_ns + next_audio * NS_PER_S // wav.rate
                if stamp > limit_ns or (stamp == limit_ns and not inclusive):
                    return
                stop = min(next_audio + chunk_frames, n_audio)
                if cut:
                    stop = min(stop, math.ceil((limit_ns - start_ns) * wav.rate / NS_PER_S))
                if stop <= next_audio:
                    return
                msg = types[AUDIO_CHUNK_MSGTYPE](
                    header=_make_header(types, stamp, audio_frame_id),
                    data=np.frombuffer(_to_format(wav, next_audio, stop, audio_format), np.uint8),
                    format=audio_format,
                    channels=wav.channels,
                    rate=wav.rate,
                )
                writer.write(aud_conn, stamp, store.serialize_cdr(msg, AUDIO_CHUNK_MSGTYPE))
                chunks += 1
                audio_written += stop - next_audio
                next_audio = stop

        last_index = -1
        with tqdm(total=expected or None, unit="frame", desc=f"record {bag.name}", disable=not progress) as bar:
            for index, bgr in _video_frames(cap, max_frames, src_fps, fps):
                stamp = _frame_stamp(start_ns, index, src_fps)
                if wav is not None:
                    write_audio_until(stamp, inclusive=True, cut=False)
                height, width = bgr.shape[:2]
                header = _make_header(types, stamp, frame_id)
                if compressed:
                    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
                    if not ok:
                        raise BagError(video_path, f"JPEG encoding failed at frame {index}")
                    msg = types[COMPRESSED_IMAGE_MSGTYPE](header=header, format="jpeg", data=buf.reshape(-1))
                else:
                    pix = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if encoding == "rgb8" else bgr
                    msg = types[IMAGE_MSGTYPE](
                        header=header,
                        height=height,
                        width=width,
                        encoding=encoding,
                        is_bigendian=0,
                        step=width * 3,
                        data=np.ascontiguousarray(pix).reshape(-1),
                    )
                writer.write(img_conn, stamp, store.serialize_cdr(msg, img_type))
                frames += 1
                last_index = index
                bar.update(1)
        if frames == 0:
            raise BagError(video_path, "no frames could be decoded")
        span_end = _frame_stamp(start_ns, last_index + 1, src_fps)
        if wav is not None:
            if clip_audio_to_video:
                write_audio_until(span_end, inclusive=False, cut=True)
            else:
                write_audio_until(2**63 - 1, inclusive=True, cut=False)
                span_end = max(span_end, start_ns + n_audio * NS_PER_S // wav.rate)
        writer.close()
    except BaseException:
        cap.release()
        if writer.storage is not None:
            writer.abort()
        shutil.rmtree(bag, ignore_errors=True)
        raise
    cap.release()
    return RecordSummary(
        bag_path=str(bag),
        storage=storage,
        image_topic=img_topic,
        image_msgtype=img_type,
        frames=frames,
        width=width,
        height=height,
        source_fps=src_fps,
        start_ns=start_ns,
        end_ns=span_end,
        audio_topic=audio_topic if wav is not None else None,
        audio_chunks=chunks,
        audio_rate=wav.rate if wav is not None else 0,
        audio_channels=wav.channels if wav is not None else 0,
        audio_frames=audio_written,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="taskmem-record-video",
        description="Record a video file (and optional WAV) into a ROS 2 bag without ROS installed.",
    )
    p.add_argument("video", help="input video (anything OpenCV decodes: avi, mp4, ...)")
    p.add_argument("bag", help="output bag directory (must not exist unless --overwrite)")
    p.add_argument("--audio", metavar="WAV", help="PCM WAV to publish as AudioChunk messages")
    p.add_argument("--image-topic", default="/camera/image_raw")
    p.add_argument("--audio-topic", default="/audio/audio")
    p.add_argument("--compressed", action="store_true", help="write CompressedImage JPEG on <topic>/compressed")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--encoding", choices=ENCODINGS, default="rgb8")
    p.add_argument("--fps", type=float, default=None, help="subsample frames to this rate")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--start-ns", type=int, default=DEFAULT_START_NS, help="stamp of the first frame (ns)")
    p.add_argument("--storage", choices=STORAGES, default="sqlite3")
    p.add_argument("--audio-chunk-ms", type=float, default=100.0)
    p.add_argument("--audio-format", choices=AUDIO_FORMATS, default="S16LE")
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--keep-audio-tail", action="store_true", help="do not cut audio at the end of the video")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point ``taskmem-record-video``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        summary = record_video(
            args.video,
            args.bag,
            audio_path=args.audio,
            image_topic=args.image_topic,
            audio_topic=args.audio_topic,
            compressed=args.compressed,
            encoding=args.encoding,
            fps=args.fps,
            max_frames=args.max_frames,
            start_ns=args.start_ns,
            storage=args.storage,
            audio_chunk_ms=args.audio_chunk_ms,
            audio_format=args.audio_format,
            frame_id=args.frame_id,
            jpeg_quality=args.jpeg_quality,
            clip_audio_to_video=not args.keep_audio_tail,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (BagError, ValueError) as exc:
        print(f"taskmem-record-video: error: {exc}", file=sys.stderr)
        return 2
    info = asdict(summary)
    info["duration_s"] = round(summary.duration_s, 3)
    print("\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

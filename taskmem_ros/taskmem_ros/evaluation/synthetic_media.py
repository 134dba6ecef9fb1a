"""Media for the synthetic benchmark: packaged footage + burnt-in signs + espeak-ng speech -> mp4.

The benchmark loaders read real VideoMME / EgoLife / EgoTempo files (mp4 with an audio track, SRT
subtitles), so the synthetic streams are written the same way: PyAV ``mpeg4`` video at the
source's frame rate and an ``aac`` mono 16 kHz track carrying the speech at known times (digital
silence elsewhere). Everything visual or audible a question depends on is placed here, and the
placements are returned so the manifest can say where each answer's evidence is.

The packaged clips are short (tree.avi 29.6 s, Megamind 11.3 s, bikes 10 s), so
:func:`source_frames` plays a file endlessly, mirroring every other pass: a stream can be as
long as needed without a frozen frame, and the loop point shows as a visible scene change.
"""

from __future__ import annotations

import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from taskmem_ros.demo_media import SpeechPlacement, draw_sign, find_sample_video, synthesize_speech
from taskmem_ros.errors import MediaError

AUDIO_RATE = 16000
AAC_FRAME = 1024  # samples per AAC frame; the encoder takes exactly this many (the last may be shorter)
SIGN_MIN_HEIGHT = 360  # signs are drawn as on a frame at least this tall: smaller ones make OCR merge words
VIDEO_BIT_RATE = 2_000_000

# name -> output (width, height): at most 640 wide, even sizes (yuv420p); tree.avi (320x240) is
# upscaled because at that size the OCR reads "DOCK 7" as "DOCK7".
SOURCE_SIZES: dict[str, tuple[int, int]] = {
    "vtest.avi": (640, 480),
    "tree.avi": (640, 480),
    "Megamind.avi": (640, 470),
    "bikes.mp4": (640, 272),
    "bigbuckbunny.mp4": (640, 360),
}


@dataclass(frozen=True)
class SignPlacement:
    """A sign burnt into the frames whose time is in [start_s, end_s) (file time)."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class WrittenClip:
    path: Path
    source: str
    source_start_s: float  # where in the endless (mirrored-loop) source timeline the clip starts
    duration_s: float
    fps: Fraction
    size: tuple[int, int]
    frames: int
    speech: tuple[SpeechPlacement, ...]
    signs: tuple[SignPlacement, ...]


def source_fps(name: str) -> Fraction:
    """The packaged file's frame rate as a small fraction (tree.avi reports 14.99993 -> 15)."""
    import cv2

    cap = cv2.VideoCapture(str(find_sample_video(name)))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    finally:
        cap.release()
    if fps <= 0:
        raise MediaError(f"{name}: video reports no frame rate")
    return Fraction(fps).limit_denominator(1001)


def source_frames(name: str, size: tuple[int, int] | None = None, start: int = 0) -> Iterator[np.ndarray]:
    """Endless RGB frames of a packaged video at ``size`` (default :data:`SOURCE_SIZES`): the file,
    then the file mirrored left-right, then as is, ... (see the module docstring for why).
    The first ``start`` frames of that endless sequence are skipped without being decoded to pixels."""
    import cv2

    path = find_sample_video(name)
    w, h = size or SOURCE_SIZES.get(name, (640, 480))
    passes = 0
    while True:
        cap = cv2.VideoCapture(str(path))
        n = 0
        try:
            while True:
                if start > 0:
                    if not cap.grab():
                        break
                    start -= 1
                    n += 1
                    continue
                ok, bgr = cap.read()
                if not ok:
                    break
                n += 1
                if bgr.shape[1] != w or bgr.shape[0] != h:
                    interp = cv2.INTER_AREA if bgr.shape[1] > w else cv2.INTER_LINEAR
                    bgr = cv2.resize(bgr, (w, h), interpolation=interp)
                if passes % 2:
                    bgr = bgr[:, ::-1]
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        if n == 0:
            raise MediaError(f"{path}: no frames could be decoded")
        passes += 1


def sign_origin(size: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the sign plate (draw_sign's default spot)."""
    w, h = size
    return w // 20, h // 8


def place_sign(frame: np.ndarray, text: str) -> None:
    """Burn ``text`` in as a sign (in place), drawn by :func:`draw_sign` at no less than the size it
    has on a :data:`SIGN_MIN_HEIGHT`-tall frame, so short frames (bikes.mp4, 272 px) stay legible."""
    h, w = frame.shape[:2]
    if h >= SIGN_MIN_HEIGHT:
        draw_sign(frame, text, origin=sign_origin((w, h)))
        return
    key = np.array([1, 2, 3], np.uint8)  # a colour draw_sign never produces: marks untouched pixels
    canvas = np.empty((SIGN_MIN_HEIGHT, w, 3), np.uint8)
    canvas[:] = key
    draw_sign(canvas, text, origin=sign_origin((w, h)))
    drawn = np.any(canvas != key, axis=2)[:h]
    frame[drawn] = canvas[:h][drawn]


def sign_box(size: tuple[int, int], text: str) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the plate :func:`place_sign` draws on a frame of ``size``."""
    w, h = size
    probe = np.zeros((h, w, 3), np.uint8)
    place_sign(probe, text)
    ys, xs = np.nonzero(probe.any(axis=2))
    if ys.size == 0:
        raise MediaError(f"sign {text!r} does not fit a {w}x{h} frame")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def speech_track(lines: Sequence[tuple[float, str]], duration_s: float) -> tuple[np.ndarray, list[SpeechPlacement]]:
    """Float32 mono track at 16 kHz with each ``(start_s, text)`` spoken by espeak-ng (via
    :func:`synthesize_speech`, which refuses overlaps and speech past the end)."""
    with tempfile.TemporaryDirectory(prefix="taskmem-syn-") as tmp:
        wav_path = Path(tmp) / "speech.wav"
        placed = synthesize_speech(lines, wav_path, duration_s, AUDIO_RATE)
        with wave.open(str(wav_path), "rb") as wf:
            pcm = np.frombuffer(wf.readframes(wf.getnframes()), "<i2")
    return pcm.astype(np.float32) / 32768.0, placed


def write_clip(
    path: str | Path,
    source: str,
    source_start_s: float,
    duration_s: float,
    *,
    speech: Sequence[tuple[float, str]] = (),
    signs: Sequence[SignPlacement] = (),
) -> WrittenClip:
    """Write ``duration_s`` of ``source`` (from ``source_start_s`` in its endless timeline) to an mp4
    with ``signs`` burnt in and ``speech`` on the audio track; all times are file times. Consecutive
    pieces of one recording (EgoLife's 30 s clips) are clips with consecutive ``source_start_s``.
    """
    import av

    out_path = Path(path)
    fps = source_fps(source)
    size = SOURCE_SIZES.get(source, (640, 480))
    n_frames = round(duration_s * fps)
    if n_frames <= 0:
        raise MediaError(f"{out_path}: duration {duration_s}s is too short")
    duration = float(n_frames / fps)
    audio, placed = speech_track(speech, duration)
    frames = source_frames(source, size, start=round(source_start_s * fps))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(out_path), "w")
    try:
        vs = container.add_stream("mpeg4", rate=fps)
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.bit_rate = VIDEO_BIT_RATE
        aus = container.add_stream("aac", rate=AUDIO_RATE)
        aus.layout = "mono"
        sent = 0  # audio samples encoded so far
        for i in range(n_frames):
            rgb = next(frames)
            t = float(i / fps)
            shown = [s.text for s in signs if s.start_s <= t < s.end_s]
            if shown:
                rgb = np.ascontiguousarray(rgb)
                for text in shown:
                    place_sign(rgb, text)
            elif not rgb.flags.c_contiguous:
                rgb = np.ascontiguousarray(rgb)
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = i
            for pkt in vs.encode(vf):
                container.mux(pkt)
            # interleave: audio up to the end of this frame
            upto = min(len(audio), round((i + 1) / fps * AUDIO_RATE))
            while sent + AAC_FRAME <= upto or (i == n_frames - 1 and sent < len(audio)):
                chunk = audio[sent : sent + AAC_FRAME]
                af = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="fltp", layout="mono")
                af.sample_rate = AUDIO_RATE
                af.pts = sent
                for pkt in aus.encode(af):
                    container.mux(pkt)
                sent += len(chunk)
        for stream in (vs, aus):
            for pkt in stream.encode(None):
                container.mux(pkt)
    except Exception:
        container.close()
        out_path.unlink(missing_ok=True)
        raise
    container.close()
    return WrittenClip(out_path, source, source_start_s, duration, fps, size, n_frames, tuple(placed), tuple(signs))


def srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def write_srt(path: str | Path, speech: Sequence[SpeechPlacement]) -> None:
    """Subtitles as VideoMME ships them: one cue per sentence, text in ``<font color="#ffffff">``."""
    cues = [
        f'{i}\n{srt_time(p.start_s)} --> {srt_time(p.end_s)}\n<font color="#ffffff">{p.text}</font>\n'
        for i, p in enumerate(sorted(speech, key=lambda p: p.start_s), start=1)
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(cues), encoding="utf-8")

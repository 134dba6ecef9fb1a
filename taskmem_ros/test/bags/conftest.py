"""Shared media and bags for the bag tests: a few real video frames plus real synthesized speech,
recorded once per session (each bag is a few MB) and copied by tests that damage them."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.demo_media import find_sample_video, synthesize_speech
from taskmem_ros.errors import MediaError

N_FRAMES = 6
WAV_SECONDS = 3.0


def _write_tone_wav(path: Path, rate: int, channels: int, seconds: float) -> None:
    t = np.arange(round(rate * seconds)) / rate
    chans = [0.3 * np.sin(2 * math.pi * (220 + 110 * c) * t) for c in range(channels)]
    pcm = (np.stack(chans, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(channels)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(pcm.tobytes())


def _synthetic_video(path: Path, n: int = 20, fps: float = 10.0) -> Path:
    import cv2

    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    for i in range(n):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, :, i % 3] = 40 + 10 * i
        cv2.putText(frame, str(i), (60, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 2)
        out.write(frame)
    out.release()
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def sample_video(media_dir: Path) -> Path:
    """vtest.avi from opencv-doc when installed (real footage), else a generated clip."""
    for name in ("vtest.avi", "bikes.mp4"):
        try:
            return find_sample_video(name)
        except MediaError:
            continue
    return _synthetic_video(media_dir / "synthetic.avi")


@pytest.fixture(scope="session")
def speech_wav(media_dir: Path) -> Path:
    """Real espeak-ng speech (mono 16 kHz S16); a tone if espeak-ng is not installed."""
    path = media_dir / "speech.wav"
    try:
        synthesize_speech([(0.1, "The red toolbox is on the top shelf.")], path, WAV_SECONDS)
    except MediaError:
        _write_tone_wav(path, 16000, 1, WAV_SECONDS)
    return path


@pytest.fixture(scope="session")
def stereo_wav(media_dir: Path) -> Path:
    path = media_dir / "stereo_22k.wav"
    _write_tone_wav(path, 22050, 2, 1.0)
    return path


@pytest.fixture(scope="session")
def bags(
    tmp_path_factory: pytest.TempPathFactory, sample_video: Path, speech_wav: Path
) -> dict[str, tuple[Path, object]]:
    """{"sqlite3"|"mcap"|"sqlite3-compressed"|"mcap-compressed": (bag dir, RecordSummary)}."""
    from taskmem_ros.bags.record_video import record_video

    root = tmp_path_factory.mktemp("bags")
    out: dict[str, tuple[Path, object]] = {}
    for storage in ("sqlite3", "mcap"):
        for compressed in (False, True):
            key = storage + ("-compressed" if compressed else "")
            bag = root / key
            summary = record_video(
                sample_video,
                bag,
                audio_path=speech_wav,
                storage=storage,  # type: ignore[arg-type]
                compressed=compressed,
                max_frames=N_FRAMES,
                progress=False,
            )
            out[key] = (bag, summary)
    return out


def _source_frames_rgb(video: Path, n: int) -> list[np.ndarray]:
    """The first ``n`` frames exactly as OpenCV decodes them, converted to RGB."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    for _ in range(n):
        ok, bgr = cap.read()
        assert ok
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def _wav_frames(path: Path) -> tuple[bytes, int, int]:
    with wave.open(str(path), "rb") as wf:
        return wf.readframes(wf.getnframes()), wf.getframerate(), wf.getnchannels()


@pytest.fixture(scope="session")
def source_frames():
    """``source_frames(video, n)``: the first n frames as OpenCV decodes them, in RGB."""
    return _source_frames_rgb


@pytest.fixture(scope="session")
def wav_frames():
    """``wav_frames(path)`` -> (raw interleaved PCM bytes, rate, channels)."""
    return _wav_frames

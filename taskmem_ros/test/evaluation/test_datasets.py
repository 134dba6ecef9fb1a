"""Benchmark loaders on tiny datasets in each real release format (parquet, JSON, mp4, SRT),
plus the real EgoTempo annotation file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mp4_fixtures import write_mp4

from taskmem_ros.evaluation.datasets import load_dataset, load_egolife, load_egotempo, load_videomme
from taskmem_ros.evaluation.datasets.egolife import DAY_NS, clock_ns, hhmmssff_ns, target_windows
from taskmem_ros.evaluation.datasets.egotempo import DEFAULT_EGOTEMPO_QA, parse_clip_id
from taskmem_ros.evaluation.media import read_segment
from taskmem_ros.evaluation.types import NS_PER_S

S = NS_PER_S
REAL_EGOTEMPO = DEFAULT_EGOTEMPO_QA  # the copy shipped with the package (CC BY 4.0)


# -- Video-MME ---------------------------------------------------------------------------------
def _vm_row(qid: str, vid: str, duration: str = "short", **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "video_id": qid.split("-")[0],
        "duration": duration,
        "domain": "Knowledge",
        "sub_category": "Humanity & History",
        "url": f"https://www.youtube.com/watch?v={vid}",
        "videoID": vid,
        "question_id": qid,
        "task_type": "Counting Problem",
        "question": f"Question {qid}?",
        "options": ["A. Apples.", "B. Bananas.", "C. Cherries.", "D. Dates."],
        "answer": "C",
    }
    row.update(kw)
    return row


@pytest.fixture(scope="module")
def videomme_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videomme")
    (root / "videomme").mkdir()
    shard0 = [
        _vm_row("001-1", "vidOne"),
        _vm_row("001-2", "vidOne", answer="A", task_type="OCR Problems"),
        _vm_row("002-1", "vid_Two", "medium"),
        _vm_row("bad-1", "vidOne", answer="E"),  # no option E
        _vm_row("bad-2", "vidOne", options=None),
    ]
    shard1 = [
        _vm_row("", "vidOne"),  # no question id
        _vm_row("003-1", "vidGone", "long"),  # video not downloaded
        _vm_row("003-2", "vidGone", "long", options=["A. 1", "B. 2", "C. 3", "D. Bsomething"]),
    ]
    pq.write_table(pa.Table.from_pylist(shard0), root / "videomme" / "test-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist(shard1), root / "videomme" / "test-00001-of-00002.parquet")
    write_mp4(root / "data" / "vidOne.mp4", 2.0)
    write_mp4(root / "data" / "vid_Two.mp4", 3.0)
    (root / "subtitle").mkdir()
    (root / "subtitle" / "vid_Two.srt").write_text(
        '1\n00:00:00,500 --> 00:00:01,500\n<font color="#ffffff">hi</font>\n', encoding="utf-8"
    )
    return root


def test_videomme_fields_and_ask_at_video_end(videomme_root: Path) -> None:
    ds = load_videomme(videomme_root)
    assert ds.name == "videomme"
    by_id = {q.qid: q for q in ds.questions}
    assert sorted(by_id) == ["001-1", "001-2", "002-1", "003-1", "003-2"]
    q = by_id["001-1"]
    assert q.dataset == "videomme" and q.stream == "vidOne" and q.question == "Question 001-1?"
    assert q.choices == ("Apples.", "Bananas.", "Cherries.", "Dates.") and q.answer == "C" and q.answer_index == 2
    assert q.category == {
        "duration": "short",
        "domain": "Knowledge",
        "sub_category": "Humanity & History",
        "task_type": "Counting Problem",
    }
    assert abs(q.ask_ns - 2 * S) < S // 10 and abs(by_id["002-1"].ask_ns - 3 * S) < S // 10
    assert by_id["001-2"].answer == "A" and by_id["001-2"].category["task_type"] == "OCR Problems"
    assert by_id["003-2"].choices[3] == "Bsomething"  # only the "D. " prefix goes
    segs = {m.stream: m for m in ds.media}
    assert sorted(segs) == ["vidOne", "vid_Two"] == ds.streams()
    assert segs["vidOne"].start_ns == 0 and segs["vidOne"].subtitle is None
    assert segs["vid_Two"].subtitle == videomme_root / "subtitle" / "vid_Two.srt"
    assert segs["vidOne"].duration_ns == by_id["001-1"].ask_ns


def test_videomme_missing_video_and_malformed_rows(videomme_root: Path) -> None:
    ds = load_videomme(videomme_root)
    assert len(ds.missing) == 1
    gone = ds.missing[0]
    assert gone.stream == "vidGone" and gone.path == videomme_root / "data" / "vidGone.mp4"
    assert gone.reason == "missing" and gone.questions == ("003-1", "003-2")
    assert all(q.ask_ns == 0 for q in ds.questions if q.stream == "vidGone")
    notes = "\n".join(ds.notes)
    assert "bad-1" in notes and "bad-2" in notes and "3 malformed row(s)" in notes
    assert "2 question(s) affected" in ds.media_report()


def test_videomme_filters_and_unreadable_video(videomme_root: Path, tmp_path: Path) -> None:
    assert {q.category["duration"] for q in load_videomme(videomme_root, durations=["medium"]).questions} == {"medium"}
    assert [q.qid for q in load_videomme(videomme_root, limit=2).questions] == ["001-1", "001-2"]
    with pytest.raises(ValueError):
        load_videomme(videomme_root, durations=["huge"])
    with pytest.raises(FileNotFoundError):
        load_videomme(tmp_path)
    (tmp_path / "videomme").mkdir()
    pq.write_table(pa.Table.from_pylist([_vm_row("9-1", "broken")]), tmp_path / "videomme" / "test-0.parquet")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.mp4").write_bytes(b"\x00" * 4096)
    ds = load_videomme(tmp_path)
    assert ds.media == [] and ds.missing[0].reason.startswith("unreadable") and ds.missing[0].questions == ("9-1",)


# -- EgoLife -----------------------------------------------------------------------------------
def test_egolife_clock() -> None:
    assert hhmmssff_ns("11440000") == (11 * 3600 + 44 * 60) * S
    assert hhmmssff_ns("00000050") == S // 2  # FF = hundredths
    assert hhmmssff_ns(1020304) == (3600 + 2 * 60 + 3) * S + 4 * S // 100  # int lost its leading zero
    assert clock_ns("DAY3", "00000100") == 2 * DAY_NS + S
    for bad in ("25000000", "1160000", "11446000", "abc", "123456789"):
        with pytest.raises(ValueError):
            hhmmssff_ns(bad) if bad != "1160000" else clock_ns("DAY0", "11000000")


def test_egolife_target_time_shapes() -> None:
    d1, d2 = 0, DAY_NS
    t = hhmmssff_ns
    assert target_windows({"date": "DAY2", "time": "11000000"}, 1) == ([(d2 + t(11000000),) * 2], [])
    assert target_windows([{"date": "DAY1", "time": "10000000"}, {"date": "DAY2", "time": "09000000"}], 1)[0] == [
        (d1 + t(10000000),) * 2,
        (d2 + t(9000000),) * 2,
    ]
    assert target_windows({"date": "DAY1", "time": ["10000000", "12000000"]}, 2)[0] == [
        (t(10000000),) * 2,
        (t(12000000),) * 2,
    ]
    assert target_windows({"date": "DAY1", "time": "10000000, 12000000 13000000"}, 2)[0] == [
        (t(10000000),) * 2,
        (t(12000000),) * 2,
        (t(13000000),) * 2,
    ]
    assert target_windows({"date": "DAY2", "time": "10000000-10300000"}, 1)[0] == [(d2 + t(10000000), d2 + t(10300000))]
    assert target_windows({"time": "10000000"}, 3)[0] == [(2 * DAY_NS + t(10000000),) * 2]  # query's date
    assert target_windows("DAY1_10000000, DAY2 11000000", 3)[0] == [(t(10000000),) * 2, (d2 + t(11000000),) * 2]
    assert target_windows(None, 1) == ([], [])
    windows, bad = target_windows({"date": "DAY1", "time": "10000000, 99999999, soon"}, 1)
    assert windows == [(t(10000000),) * 2] and bad == ["99999999", "soon"]


def _el_record(rid: int, day: str, time: str, **kw: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "ID": rid,
        "query_time": {"date": day, "time": time},
        "type": "EventRecall",
        "need_audio": False,
        "question": f"What happened {rid}?",
        "choice_a": "Cooking",
        "choice_b": "Dancing",
        "choice_c": "Reading",
        "choice_d": "Sleeping",
        "answer": "B",
        "target_time": {"date": day, "time": "11000000"},
        "identity": "A1_JAKE",
    }
    rec.update(kw)
    return rec


@pytest.fixture(scope="module")
def egolife_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("egolife")
    jake = [
        _el_record(1, "DAY1", "11440000", type="EntityLog", need_audio=True),
        _el_record(2, "DAY1", "11003050", target_time=[{"date": "DAY1", "time": "11000000"}]),
        _el_record(3, "DAY2", "09000000", target_time={"date": "DAY2", "time": "08000000,08300000"}),
        _el_record(4, "DAY1", "1144000"),  # lost its leading zero: 01:14:40.00
        _el_record(5, "DAY1", "11440000", answer="Z"),
        "not a record",
        _el_record(6, "DAY1", "xx"),
    ]
    alice = [_el_record(1, "DAY1", "12000000", identity=None, type="HabitInsight")]
    (root / "EgoLifeQA").mkdir()
    (root / "EgoLifeQA" / "EgoLifeQA_A1_JAKE.json").write_text(json.dumps(jake), encoding="utf-8")
    (root / "EgoLifeQA" / "EgoLifeQA_A2_ALICE.json").write_text(json.dumps(alice), encoding="utf-8")
    for stamp in ("11000000", "11003000"):
        write_mp4(root / "A1_JAKE" / "DAY1" / f"DAY1_A1_JAKE_{stamp}.mp4", 1.0)
    write_mp4(root / "A1_JAKE" / "DAY3" / "DAY3_A1_JAKE_08000000.mp4", 1.0)  # after every question
    (root / "A1_JAKE" / "DAY1" / "notes.mp4").write_bytes(b"")
    return root


def test_egolife_fields_clock_and_media(egolife_root: Path) -> None:
    ds = load_egolife(egolife_root)
    by_id = {q.qid: q for q in ds.questions}
    assert sorted(by_id) == ["A1_JAKE:1", "A1_JAKE:2", "A1_JAKE:3", "A1_JAKE:4", "A2_ALICE:1"]
    q = by_id["A1_JAKE:1"]
    assert q.dataset == "egolife" and q.stream == "A1_JAKE" and q.ask_ns == hhmmssff_ns("11440000")
    assert q.choices == ("Cooking", "Dancing", "Reading", "Sleeping") and q.answer == "B" and q.answer_index == 1
    assert q.category == {"type": "EntityLog"} and q.meta["need_audio"] is True and q.meta["id"] == "1"
    assert q.evidence_ns == ((hhmmssff_ns("11000000"),) * 2,)
    assert by_id["A1_JAKE:2"].ask_ns == (11 * 3600 + 30) * S + S // 2
    assert by_id["A1_JAKE:3"].ask_ns == DAY_NS + 9 * 3600 * S
    assert by_id["A1_JAKE:3"].evidence_ns == ((DAY_NS + 8 * 3600 * S,) * 2, (DAY_NS + (8 * 3600 + 1800) * S,) * 2)
    assert by_id["A2_ALICE:1"].stream == "A2_ALICE" and by_id["A2_ALICE:1"].category == {"type": "HabitInsight"}
    # "1144000" is a valid stamp once zero-padded (01:14:40.00): ints/strings lose leading zeros
    assert by_id["A1_JAKE:4"].ask_ns == (3600 + 14 * 60 + 40) * S
    # clips on the DAYn clock from their names; all use audio; clips after the last question dropped
    segs = ds.segments("A1_JAKE")
    assert [s.start_ns for s in segs] == [hhmmssff_ns("11000000"), hhmmssff_ns("11003000")]
    assert all(s.use_audio and s.subtitle is None for s in segs)
    assert ds.streams() == ["A1_JAKE"]


def test_egolife_missing_media_and_malformed_records(egolife_root: Path) -> None:
    ds = load_egolife(egolife_root)
    missing = {(m.stream, m.path.name): m for m in ds.missing}
    assert missing[("A2_ALICE", "A2_ALICE")].questions == ("A2_ALICE:1",)  # no clips at all
    assert missing[("A1_JAKE", "DAY2")].questions == ("A1_JAKE:3",)  # evidence on a day not downloaded
    assert len(ds.missing) == 2
    notes = "\n".join(ds.notes)
    assert "3 malformed record(s)" in notes and "bad query_time" in notes and "'Z'" in notes
    assert "not named" in notes and "after the last question" in notes


def test_egolife_identity_limit_and_qa_file(egolife_root: Path, tmp_path: Path) -> None:
    ds = load_egolife(egolife_root, identity="A2_ALICE")
    assert [q.qid for q in ds.questions] == ["A2_ALICE:1"] and ds.media == []
    assert [q.qid for q in load_egolife(egolife_root, limit=2).questions] == ["A1_JAKE:1", "A1_JAKE:2"]
    single = tmp_path / "qa.json"
    single.write_text(json.dumps([_el_record(7, "DAY1", "11003500", identity=None)]), encoding="utf-8")
    ds = load_egolife(egolife_root, qa_file=single, identity="A1_JAKE")
    assert [q.qid for q in ds.questions] == ["A1_JAKE:7"] and len(ds.segments("A1_JAKE")) == 2
    with pytest.raises(FileNotFoundError):
        load_egolife(tmp_path / "nowhere")


# -- EgoTempo ----------------------------------------------------------------------------------
def test_parse_clip_id() -> None:
    uid = "0d270946-95c5-4e71-ae49-b9e802548147"
    assert parse_clip_id(f"{uid}_120.0_180.0") == (uid, 120.0, 180.0)
    assert parse_clip_id(f"{uid}_-0.125_12.5") == (uid, -0.125, 12.5)  # the release has these
    for bad in (f"{uid}_180.0_120.0", f"{uid}_x_1.0", f"{uid}_-2.0_-1.0", "a_b_1.0_2.0", "nounderscores"):
        with pytest.raises(ValueError):
            parse_clip_id(bad)


def _tempo(qid: str, clip: str, qtype: str = "x", question: str = "?", answer: str = "y") -> dict[str, str]:
    return {"question_id": qid, "clip_id": clip, "question_type": qtype, "question": question, "answer": answer}


def test_real_egotempo_annotations_with_no_videos(tmp_path: Path) -> None:
    ds = load_egotempo(REAL_EGOTEMPO, tmp_path)
    assert len(ds.questions) == 500 and len({q.qid for q in ds.questions}) == 500
    types = Counter(q.category["question_type"] for q in ds.questions)
    assert len(types) == 10 and set(types.values()) == {50}
    assert all(q.choices == () and q.answer and q.dataset == "egotempo" for q in ds.questions)
    q = next(q for q in ds.questions if q.qid == "0d270946-95c5-4e71-ae49-b9e802548147_120.0_180.0")
    assert q.stream == q.qid and q.ask_ns == 60 * S and q.answer == "A spoon."
    assert ds.media == [] and ds.streams() == []
    assert {qid for m in ds.missing for qid in m.questions} == {q.qid for q in ds.questions}
    assert len(ds.missing) == len({q.stream for q in ds.questions})
    assert "500 question(s) affected" in ds.media_report()
    assert ds.notes == []


def test_egotempo_clip_full_video_and_missing(tmp_path: Path) -> None:
    u1, u2, u3, u4 = "aaaa-1111", "bbbb-2222", "cccc-3333", "dddd-4444"
    anns = [
        _tempo("q1", f"{u1}_10.0_12.5", "counting objects", "How many?", "Two."),
        _tempo("q2", f"{u2}_2.0_4.5", "locating object", "Where?", "Shelf."),
        _tempo("q3", f"{u2}_2.0_4.5", "action sequence", "Then?", "Cut."),
        _tempo("q4", f"{u3}_0.0_5.0", "object sequence", "What?", "Cup."),
        _tempo("q7", f"{u4}_-0.5_2.0", "counting actions", "How often?", "Once."),
        _tempo("q5", "broken"),
        _tempo("q1", f"{u1}_10.0_12.5", question="dup"),
        _tempo("q6", f"{u1}_10.0_12.5", question=""),
        ["not", "an", "object"],
    ]
    qa = tmp_path / "egotempo_openQA.json"
    qa.write_text(json.dumps({"info": {"version": "1.0"}, "annotations": anns}), encoding="utf-8")
    videos = tmp_path / "videos"
    write_mp4(videos / f"{u1}_10.0_12.5.mp4", 2.5)  # the clip itself
    full = write_mp4(videos / f"{u2}.mp4", 6.0)  # only the full Ego4D video
    write_mp4(videos / f"{u4}.mp4", 3.0)
    ds = load_egotempo(qa, videos)
    assert [q.qid for q in ds.questions] == ["q1", "q2", "q3", "q4", "q7"]
    q1 = ds.questions[0]
    assert q1.answer == "Two." and q1.choices == () and q1.ask_ns == 2_500_000_000
    assert q1.category == {"question_type": "counting objects"} and q1.answer_index is None
    segs = {m.stream: m for m in ds.media}
    clip_seg, full_seg = segs[f"{u1}_10.0_12.5"], segs[f"{u2}_2.0_4.5"]
    assert clip_seg.start_ns == 0 and clip_seg.duration_ns == 0
    assert full_seg.path == full and full_seg.start_ns == -2 * S and full_seg.duration_ns == 4_500_000_000
    assert [(m.stream, m.questions) for m in ds.missing] == [(f"{u3}_0.0_5.0", ("q4",))]
    assert "4 malformed annotation(s)" in "\n".join(ds.notes)
    # the convention end to end: the full video read as the clip's stream [0, 2.5 s]
    items = list(read_segment(full_seg, keyframe_fps=1.0))
    stamps = [it[0] if k == "frame" else it.stamp_ns for k, it in items]  # type: ignore[index,union-attr]
    assert stamps == sorted(stamps) and stamps[0] == 0 and max(stamps) <= q1.ask_ns
    frames = [it[0] for k, it in items if k == "frame"]  # type: ignore[index]
    assert frames == [0, S // 2, S, 3 * S // 2, 2 * S, 5 * S // 2]
    # a negative clip start (as in the release): the file begins 0.5 s into the stream, ends at 2.5 s
    q7, neg = ds.questions[-1], segs[f"{u4}_-0.5_2.0"]
    assert (neg.start_ns, neg.duration_ns, q7.ask_ns) == (S // 2, 2 * S, 5 * S // 2)
    frames = [it[0] for k, it in read_segment(neg, keyframe_fps=1.0) if k == "frame"]  # type: ignore[index]
    assert frames == [S // 2, S, 3 * S // 2, 2 * S, 5 * S // 2]


def test_load_dataset_dispatch(videomme_root: Path, egolife_root: Path, tmp_path: Path) -> None:
    assert load_dataset("videomme", videomme_root, limit=1).questions[0].qid == "001-1"
    assert load_dataset("egolife", egolife_root, identity="A2_ALICE").name == "egolife"
    (tmp_path / "videos").mkdir()
    ann = _tempo("q", "u-1_0.0_1.0")
    (tmp_path / "egotempo_openQA.json").write_text(json.dumps({"annotations": [ann]}), encoding="utf-8")
    ds = load_dataset("egotempo", tmp_path)
    assert ds.missing[0].path == tmp_path / "videos" / "u-1_0.0_1.0.mp4"
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope", tmp_path)

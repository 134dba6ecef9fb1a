"""bag -> taskmem-replay (ROS graph, /clock) -> memorizer -> SQLite store -> AnswerTask / QueryMemory."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros

PKG = Path(__file__).resolve().parents[2]
NS = 1_000_000_000
SUCCEEDED, ABORTED = 4, 6  # action_msgs/GoalStatus


def write_params(tmp_path: Path, db: Path, **memorizer: object) -> Path:
    params = yaml.safe_load((PKG / "config" / "robot.yaml").read_text())
    params["/**"]["ros__parameters"]["store"]["url"] = f"sqlite:///{db}"
    # SMALL_SPEECH's short sentences were picked for pocketsphinx, which keeps them exact (Whisper
    # tiny.en hears "the spare battery" as "the Ceramager"); Whisper: test_graph_objects_speech.py.
    params["/**"]["ros__parameters"]["segmenter"]["asr"] = "pocketsphinx"
    # Objects have their own graph test; here the detector would only add CPU load to the replay.
    params["/**"]["ros__parameters"]["policy"]["detector"] = "none"
    params["memorizer"]["ros__parameters"].update({"sensor_qos": "replay", **memorizer})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def replay(bag: Path, rate: float = 3.0) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "taskmem_ros.cli.replay", str(bag), "--rate", str(rate), "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory, small_bag: tuple[Path, object]) -> Iterator[tuple]:
    """One bring-up with the small bag replayed into it, shared by the tests of this module."""
    from graph_client import GraphClient

    tmp = tmp_path_factory.mktemp("graph")
    db = tmp / "memory.db"
    params = write_params(tmp, db, ingest={"max_pending_clips": 100, "drop_policy": "drop_newest"})
    from taskmem_ros.nodes.bringup import bringup_process

    with bringup_process(params, tmp / "bringup.log") as proc:
        client = GraphClient()
        try:
            done = replay(small_bag[0])
            assert done.returncode == 0, done.stderr
            yield proc, client, db, small_bag[1], done.stdout
        finally:
            client.close()


def test_replay_memorizes_every_clip(replayed: tuple) -> None:
    _bringup, client, _db, _summary, out = replayed
    stats = client.trigger("/memorizer/get_stats")
    # the replay flushed only once the memorizer had taken every message it sent
    assert json.loads(out)["all_taken"] is True, out
    assert sum(stats["received"].values()) == 500, stats
    assert stats["clips_memorized"] == 3, (stats, out)  # 25 s of stream in 10 s clips (last one partial)
    assert stats["frames_rejected"] == 0 and stats["audio_rejected"] == 0
    # the replay handshake + keep-all replay QoS deliver everything, in time for its clip
    assert stats["frames_dropped_late"] == 0 and stats["audio_dropped_late"] == 0, stats
    assert stats["transcript_segments"] == 2, stats  # both spoken facts reached the ASR
    assert stats["entries_committed"] >= 3
    assert len(client.entry_ids()) == stats["entries_committed"]  # every commit was published


def test_answer_task_open_question_with_evidence(replayed: tuple) -> None:
    _b, client, db, _summary, out = replayed
    result = client.answer("Where is the spare battery?")
    entries = [e.text for e in client.query("", max_results=100).entries]
    assert not result.abstained, (entries, client.trigger("/memorizer/get_stats"), out)
    assert "cabinet" in result.answer.lower()
    assert result.evidence_ids and set(result.evidence_ids) <= set(client.entry_ids())
    assert result.task_id > 0
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore

    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}")) as store:
        logged = [t for t in store.tasks() if t.id == result.task_id]
        evaluation = store.tasks(is_eval=True)
    assert logged and logged[0].question == "Where is the spare battery?" and not logged[0].is_eval
    assert logged[0].evidence_ids == list(result.evidence_ids)
    assert all(t.id != result.task_id for t in evaluation)  # evaluation questions stay flagged apart


def test_answer_task_multiple_choice_from_ocr(replayed: tuple) -> None:
    _b, client, *_ = replayed
    result = client.answer("Which dock number was on the sign?", ["Dock 3", "Dock 7", "Dock 9", "Dock 12"])
    assert not result.abstained
    assert result.choice_index == 1


def test_answers_are_as_of_the_asking_time(replayed: tuple) -> None:
    _b, client, _db, summary, out = replayed
    # Asked one second into the stream nothing was memorized yet: memory-only answering must abstain.
    early = client.answer("Where are my keys?", asked_at_ns=summary.start_ns + 1 * NS, is_eval=True)
    assert early.abstained and not early.evidence_ids
    late = client.answer("Where are my keys?", is_eval=True)
    assert not late.abstained and "drawer" in late.answer.lower(), (late.answer, out)
    before = client.query("keys kitchen drawer", as_of_ns=summary.start_ns + 5 * NS)
    assert before.success and not any("drawer" in e.text.lower() for e in before.entries)
    after = client.query("keys kitchen drawer")
    assert any("drawer" in e.text.lower() for e in after.entries)


@pytest.mark.parametrize(
    "hostile",
    ['"; DROP TABLE memory_entries; --', "NEAR(battery cabinet", "text:* OR 1=1", "\x00\x01", "🤖" * 500, "(((", "'"],
)
def test_hostile_query_strings(replayed: tuple, hostile: str) -> None:
    _b, client, *_ = replayed
    resp = client.query(hostile)
    assert resp.success, resp.message
    result = client.answer(hostile, is_eval=True)
    assert result is not None  # every goal is accepted: a refusal is an abort with its reason
    if hostile.startswith("\x00"):  # DDS strings end at NUL: arrives empty, refused as an empty task
        assert client.last_answer_status == ABORTED and result.message == "empty question"
    else:  # answered or abstained, never an error
        assert client.last_answer_status == SUCCEEDED and result.message == "", result.message
    assert client.query("battery").entries  # the store is intact


def test_oversized_question_is_refused_with_its_reason(replayed: tuple) -> None:
    _b, client, *_ = replayed
    result = client.answer("where " * 2000, is_eval=True)
    assert client.last_answer_status == ABORTED and result.abstained and result.task_id == -1
    assert "12000 characters" in result.message and "max_question_chars=4000" in result.message


def test_inverted_window_is_an_error(replayed: tuple) -> None:
    _b, client, *_ = replayed
    resp = client.query("battery", window_start_ns=20 * NS, window_end_ns=10 * NS)
    assert not resp.success and "window_start" in resp.message and "after window_end" in resp.message


def test_timeline_and_bad_mode(replayed: tuple) -> None:
    _b, client, *_ = replayed
    timeline = client.query("", max_results=1000)
    assert timeline.success and len(timeline.entries) == len(client.entry_ids())
    bad = client.query("battery", mode="telepathy")
    assert not bad.success and "hybrid" in bad.message

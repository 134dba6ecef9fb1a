"""`taskmem-replay --in-process`: the core memory loop without ROS, deterministic per bag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskmem_ros.cli.replay import main
from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore


def _memories(db: Path) -> list[tuple[int, int, str, str]]:
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}")) as store:
        return [(r.start_ns, r.end_ns, r.source, r.text) for r in store.timeline()]


def test_in_process_replay_is_deterministic(tmp_path: Path, small_bag: tuple[Path, object], capsys) -> None:
    bag, summary = small_bag
    runs = []
    for name in ("a.db", "b.db"):
        assert main([str(bag), "--in-process", "--db", str(tmp_path / name), "--no-progress"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["clips_memorized"] == 3 and stats["frames_rejected"] == 0 and stats["audio_dropped"] == 0
        runs.append(_memories(tmp_path / name))
    assert runs[0] == runs[1]  # same bag, same memory: stamps come from headers, not wall time
    texts = " ".join(t for *_, t in runs[0]).lower()
    assert "cabinet" in texts and "drawer" in texts and "dock 7" in texts
    assert all(summary.start_ns <= s <= e <= summary.end_ns for s, e, *_ in runs[0])  # type: ignore[attr-defined]


@pytest.mark.parametrize("junk", [b"", b"not a bag at all", b"\x00" * 4096])
def test_corrupt_bag_is_a_clear_error(tmp_path: Path, junk: bytes, capsys) -> None:
    bag = tmp_path / "broken.mcap"
    bag.write_bytes(junk)
    assert main([str(bag), "--in-process", "--db", str(tmp_path / "m.db"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "taskmem-replay:" in err and "broken.mcap" in err and "Traceback" not in err


def test_missing_bag_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "nope"), "--in-process", "--no-progress"]) == 2
    assert "nope" in capsys.readouterr().err


def test_two_runs_into_one_store_append_clips(tmp_path: Path, small_bag: tuple[Path, object], capsys) -> None:
    """A second replay (or a reboot) into the same store restarts its clip count at 0; its clips
    are new rows, and the first run's clips keep their windows and transcripts."""
    bag, _ = small_bag
    db = tmp_path / "m.db"
    assert main([str(bag), "--in-process", "--db", str(db), "--no-progress"]) == 0
    capsys.readouterr()
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}")) as store:
        clips_first = store.clips()
        entries_first = {r.id: r.clip_id for r in store.timeline()}
    assert len(clips_first) == 3 and [c["run_clip_index"] for c in clips_first] == [0, 1, 2]
    assert main([str(bag), "--in-process", "--db", str(db), "--no-progress"]) == 0
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}")) as store:
        clips = store.clips()
        entries = {r.id: r.clip_id for r in store.timeline()}
    assert clips[:3] == clips_first and len(clips) == 6
    assert [c["run_clip_index"] for c in clips[3:]] == [0, 1, 2] and clips[3]["run"] != clips[0]["run"]
    assert [c["clip_index"] for c in clips] == list(range(6))
    assert all(entries[i] == c for i, c in entries_first.items())
    assert {entries[i] for i in set(entries) - set(entries_first)} <= {c["id"] for c in clips[3:]}


def test_salvaged_bag_is_reported_in_the_summary(tmp_path: Path, small_bag: tuple[Path, object], capsys) -> None:
    import shutil

    bag = tmp_path / "cut"
    shutil.copytree(small_bag[0], bag)
    storage = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    with storage.open("r+b") as fh:
        fh.truncate(storage.stat().st_size * 2 // 3)
    assert main([str(bag), "--in-process", "--db", str(tmp_path / "m.db"), "--no-progress"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["bag_salvaged"] is True and stats["bag_complete"] is False
    assert stats["bag_messages_lost"] > 0 and stats["bag_errors"]
    assert stats["clips_memorized"] >= 1  # what was readable was memorized


def test_unknown_message_types_are_warned_and_counted(tmp_path: Path, caplog, capsys) -> None:
    from rosbags.rosbag2 import Writer

    from taskmem_ros.bags.typestore import make_typestore

    store = make_typestore()
    String = store.types["std_msgs/msg/String"]
    bag = tmp_path / "odd"
    with Writer(bag, version=8) as writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        for i in range(3):
            writer.write(conn, (i + 1) * 10**9, store.serialize_cdr(String(data=f"hi {i}"), "std_msgs/msg/String"))
    with caplog.at_level("WARNING", logger="taskmem-replay"):
        assert main([str(bag), "--in-process", "--db", str(tmp_path / "m.db"), "--no-progress"]) == 0
    warned = [r.getMessage() for r in caplog.records if "std_msgs/msg/String" in r.getMessage()]
    assert len(warned) == 1 and "/chatter" in warned[0]  # once per type, not per message
    assert json.loads(capsys.readouterr().out)["messages_ignored"] == 3

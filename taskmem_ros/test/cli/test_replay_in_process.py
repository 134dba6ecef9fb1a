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

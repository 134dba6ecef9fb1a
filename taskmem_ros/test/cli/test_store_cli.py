"""`taskmem-store sync`: argument handling, progress, idempotent re-runs, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskmem_ros.cli.store import main
from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import MemoryDraft


def test_sync_twice_adds_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    robot, fleet = tmp_path / "robot.db", tmp_path / "fleet.db"
    with EpisodicStore(StoreConfig(url=f"sqlite:///{robot}", embedder="hash")) as s:
        s.add_entries("robot-a", [MemoryDraft(f"box {i} on shelf {i}", start_ns=i, end_ns=i + 1) for i in range(12)])
    assert main(["sync", "--from", f"sqlite:///{robot}", "--to", str(fleet), "--batch", "5"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["entries_added"] == 12 and "entries" in err  # tqdm progress on stderr
    assert main(["sync", "--from", str(robot), "--to", f"sqlite:///{fleet}", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["entries_added"], report["entries_present"]) == (0, 12)
    with EpisodicStore(StoreConfig(url=f"sqlite:///{fleet}", embedder="hash")) as s:
        assert s.count_entries("robot-a") == 12


def test_bad_arguments_and_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sync", "--from", "a.db"])  # no --to
    with pytest.raises(SystemExit):
        main(["sync", "--from", "a.db", "--to", "b.db", "--batch", "0"])
    assert main(["sync", "--from", "nosuchdriver://x", "--to", str(tmp_path / "b.db")]) == 1
    assert "taskmem-store:" in capsys.readouterr().err


def test_forget_previews_then_applies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "robot.db"
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="hash")) as store:
        store.add_entries("robot", [MemoryDraft(t, start_ns=0, end_ns=1) for t in ("the blue cabinet", "a red mug")])
    assert main(["forget", "--url", str(db), "--text", ""]) == 1
    assert "everything" in capsys.readouterr().err
    assert main(["forget", "--url", str(db)]) == 1  # no criterion at all
    capsys.readouterr()
    assert main(["forget", "--url", str(db), "--text", "blue cabinet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] and out["entries"] == 1 and out["preview"][0]["text"] == "the blue cabinet"
    assert main(["forget", "--url", str(db), "--text", "blue cabinet", "--apply", "--by", "alice"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 1
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="hash")) as store:
        assert [r.text for r in store.timeline()] == ["a red mug"]
        assert store.forget_log()[0].requested_by == "alice"
        assert store.search("blue cabinet", mode="fts") == []

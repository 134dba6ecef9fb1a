"""The streaming protocol end to end on the synthetic benchmark with the CPU baseline:
real footage + espeak speech -> PyAV -> segmenter -> VAD/ASR -> perception policy -> SQLite
-> questions at their ask times answered from as-of memory -> graded -> report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from taskmem_ros.config import StoreConfig, TaskMemConfig
from taskmem_ros.evaluation.ci import run_ci
from taskmem_ros.evaluation.cli import main as eval_main
from taskmem_ros.evaluation.datasets import load_videomme
from taskmem_ros.evaluation.metrics import score
from taskmem_ros.evaluation.runner import CLOCK_OFFSET_NS, RunOptions, StreamingRunner
from taskmem_ros.store import EpisodicStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("streaming_ci")
    results = run_ci(base / "data", base / "report", seed=0)
    manifest = json.loads((base / "data" / "manifest.json").read_text())
    return {"base": base, "results": results, "manifest": manifest}


def test_cpu_baseline_beats_chance_and_metrics_are_consistent(ci_run: dict) -> None:
    results = ci_run["results"]
    assert set(results) == {"videomme-synthetic", "egolife-synthetic", "egotempo-synthetic"}
    for name, rows in results.items():
        expected = len(ci_run["manifest"]["datasets"][name.removesuffix("-synthetic")]["questions"])
        assert len(rows) == expected, name  # every question answered or abstained on, once
        s = score(rows)
        assert s.accuracy == pytest.approx(s.coverage * s.precision, abs=1e-12)
        assert 0 < s.coverage < 1, (name, s)  # it abstains on some (the unanswerable ones)
    for name in ("videomme-synthetic", "egolife-synthetic"):  # four options: chance is 0.25
        assert score(results[name]).accuracy > 0.25, name
    assert score(results["egotempo-synthetic"]).accuracy > 0.25


def test_unanswerable_questions_are_mostly_abstained_on(ci_run: dict) -> None:
    unanswerable = {
        q["qid"] for d in ci_run["manifest"]["datasets"].values() for q in d["questions"] if not q["answerable"]
    }
    rows = [r for rows in ci_run["results"].values() for r in rows if r.qid in unanswerable]
    assert len(rows) == len(unanswerable) >= 3
    assert sum(r.abstained for r in rows) >= len(rows) / 2
    answerable = [r for rows in ci_run["results"].values() for r in rows if r.qid not in unanswerable]
    assert sum(r.correct for r in answerable) / len(answerable) > 0.5


def test_answers_only_cite_memory_from_before_the_question(ci_run: dict) -> None:
    db = ci_run["base"] / "data" / "eval.db"
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="minilm")) as store:
        checked = 0
        for rows in ci_run["results"].values():
            for r in rows:
                for entry in store.get_entries(r.evidence_ids):
                    assert entry.end_ns <= r.ask_ns + CLOCK_OFFSET_NS, (r.qid, entry.text)
                    assert entry.stream.endswith("/" + r.stream), (r.qid, entry.stream)  # no other stream's memory
                    checked += 1
        assert checked > 10
        tasks = store.tasks(is_eval=True)
        assert len(tasks) == sum(len(v) for v in ci_run["results"].values())  # logged, flagged as evaluation
        assert store.tasks(is_eval=False) == []


def test_report_has_tables_reference_rows_and_plots(ci_run: dict) -> None:
    report = ci_run["base"] / "report"
    md = (report / "report.md").read_text()
    assert "cpu-baseline-seed0" in md and "reported in the paper (not measured here)" in md
    assert "TaskMem (Ours)" in md and "egotempo-synthetic" in md
    data = json.loads((report / "report.json").read_text())
    assert data["summary"]["videomme-synthetic"]["overall"]["n"] == len(ci_run["results"]["videomme-synthetic"])
    plots = list(report.glob("plot_*.png"))
    assert plots and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)


def test_resume_skips_finished_streams_and_replays_interrupted_ones(ci_run: dict) -> None:
    data = ci_run["base"] / "data"
    cfg = TaskMemConfig()
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, url=f"sqlite:///{data / 'eval.db'}"))
    dataset = load_videomme(data / "videomme")
    dataset.name = "videomme-synthetic"
    before = {r.qid: r for r in ci_run["results"]["videomme-synthetic"]}
    with EpisodicStore(cfg.store) as store:
        runner = StreamingRunner(cfg, store, RunOptions(run="cpu-baseline-seed0", progress=False))
        # pretend the last stream was cut off mid-way (a crash between "started" and "done")
        last = dataset.streams()[-1]
        run_id = store.eval_run_id("cpu-baseline-seed0")
        assert run_id is not None
        store.set_eval_stream(run_id, dataset.name, last, status="started", memory_stream="x", attempts=1)
        after = runner.run(dataset)
        state = store.eval_stream_state(run_id, dataset.name, last)
        runner.policy.close()
    assert runner.stats["streams_skipped"] == len(dataset.streams()) - 1 and runner.stats["streams_done"] == 1
    assert state is not None and state.status == "done" and state.memory_stream.endswith("#2")
    assert {r.qid for r in after} == set(before)
    assert [before[r.qid].correct for r in after] == [r.correct for r in after]  # same memory, same grades


def test_resuming_with_other_settings_is_refused(ci_run: dict) -> None:
    data = ci_run["base"] / "data"
    cfg = TaskMemConfig()
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, url=f"sqlite:///{data / 'eval.db'}"))
    from taskmem_ros.store import StoreError

    with EpisodicStore(cfg.store) as store, pytest.raises(StoreError, match="other settings"):
        StreamingRunner(cfg, store, RunOptions(run="cpu-baseline-seed0", seed=1, progress=False))


def test_cli_reports_an_existing_run_and_rejects_bad_arguments(ci_run: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = ci_run["base"] / "data" / "eval.db"
    assert eval_main(["report", "--db", str(db), "--run", "cpu-baseline-seed0", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").is_file()
    out = capsys.readouterr().out
    assert "videomme-synthetic: Accuracy" in out
    assert eval_main(["report", "--db", str(db), "--run", "nope", "--out", str(tmp_path)]) == 2
    assert eval_main(["run", "--dataset", "videomme", "--db", str(tmp_path / "x.db"), "--run", "r"]) == 2  # no --root


def test_missing_media_is_reported_and_the_rest_runs(ci_run: dict, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "videomme"
    shutil.copytree(ci_run["base"] / "data" / "videomme", root)
    videos = sorted((root / "data").glob("*.mp4"))
    videos[0].unlink()
    dataset = load_videomme(root)
    assert [m.path.name for m in dataset.missing] == [videos[0].name]
    lost = set(dataset.missing[0].questions)
    assert lost and videos[0].name in dataset.media_report()
    cfg = TaskMemConfig()
    cfg = dataclasses.replace(cfg, store=StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}", embedder="hash"))
    with EpisodicStore(cfg.store) as store:
        runner = StreamingRunner(cfg, store, RunOptions(run="partial", progress=False, task_log="none"))
        rows = runner.run(dataset)
        runner.policy.close()
        assert store.tasks() == []  # task_log="none"
    assert {r.qid for r in rows} == {q.qid for q in dataset.questions} - lost  # the rest ran


def test_cli_run_on_egotempo_format_with_resume(ci_run: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = ci_run["base"] / "data" / "egotempo"
    args = ["run", "--dataset", "egotempo", "--qa-file", str(data / "egotempo_openQA.json"),
            "--video-dir", str(data / "videos"), "--db", str(tmp_path / "e.db"), "--run", "cli",
            "--max-streams", "1", "--no-progress", "--out", str(tmp_path / "rep")]  # fmt: skip
    assert eval_main(args) == 0
    first = capsys.readouterr().out
    assert "egotempo: all media present" in first and "egotempo: Accuracy" in first
    assert (tmp_path / "rep" / "report.md").is_file()
    assert eval_main(args) == 0  # resumed: the finished stream is skipped, same figures
    assert capsys.readouterr().out.splitlines()[-1] == first.splitlines()[-1]

"""report.json / report.md / plots, and the paper's reported rows kept as data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskmem_ros.evaluation import reference
from taskmem_ros.evaluation.metrics import breakdown, score
from taskmem_ros.evaluation.report import MEASURED, write_report
from taskmem_ros.evaluation.types import EvalResult

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ABSTRACT = Path(__file__).resolve().parents[3] / "docs" / "reference" / "taskmem-paper-abstract.txt"


def result(i: int, dataset: str, kind: str, category: dict[str, str], **kw: object) -> EvalResult:
    return EvalResult(
        qid=f"{dataset}-{i}",
        dataset=dataset,
        stream=f"s{i % 3}",
        ask_ns=i * 10**9,
        question=f"question {i}?",
        reference="B",
        prediction="" if kind == "abstained" else "B",
        abstained=kind == "abstained",
        correct=kind == "correct",
        category=category,
        **kw,  # type: ignore[arg-type]
    )


def make_results() -> dict[str, list[EvalResult]]:
    kinds = ["correct", "correct", "wrong", "abstained", "correct", "abstained", "wrong", "correct"]
    videomme = [
        result(i, "videomme", k, {"duration": ("short", "medium", "long")[i % 3], "task": f"t{i % 2}"})
        for i, k in enumerate(kinds)
    ]
    egotempo = [
        result(i, "egotempo", k, {"question_type": f"type/{i % 2}"}, score=4.0 if k == "correct" else 1.0, anls=0.5)
        for i, k in enumerate(kinds[:5])
        if k != "abstained"
    ]
    synthetic = [result(i, "egolife-synthetic", k, {"day": "DAY1"}) for i, k in enumerate(kinds[:4])]
    return {"videomme": videomme, "egotempo": egotempo, "egolife-synthetic": synthetic, "empty-set": []}


@pytest.fixture
def report(tmp_path: Path) -> tuple[dict[str, Path], dict[str, list[EvalResult]]]:
    results = make_results()
    paths = write_report(
        tmp_path / "out",
        run_name="qwen3vl-base",
        results_by_dataset=results,
        settings={"seed": 0, "policy": "qwen3vl", "db": tmp_path / "eval.db"},
        media_reports={"videomme": "videomme: 1 media file(s) missing\n  /x.mp4 (missing)"},
    )
    return paths, results


def test_json_matches_metrics(report: tuple[dict[str, Path], dict[str, list[EvalResult]]]) -> None:
    paths, results = report
    doc = json.loads(paths["json"].read_text())
    assert doc["run"] == "qwen3vl-base" and doc["settings"]["seed"] == 0
    for name, rows in results.items():
        s = score(rows)
        overall = doc["summary"][name]["overall"]
        assert (overall["n"], overall["answered"], overall["correct"]) == (s.n, s.answered, s.correct)
        assert overall["accuracy"] == pytest.approx(s.accuracy)
        assert overall["coverage"] == pytest.approx(s.coverage)
        assert overall["precision"] == pytest.approx(s.precision)
        assert len(doc["results"][name]) == len(rows)
        assert [r["qid"] for r in doc["results"][name]] == [r.qid for r in rows]
    by_duration = breakdown(results["videomme"], "duration")
    assert doc["summary"]["videomme"]["breakdown"]["duration"]["long"]["n"] == by_duration["long"].n
    assert doc["summary"]["egotempo"]["open_ended"]["mean_anls"] == pytest.approx(0.5)
    assert doc["reference"]["rows"]["TaskMem (Ours)"]["egolife"]["accuracy"] == 45.4
    assert doc["reference"]["label"] == reference.REPORTED_LABEL
    assert doc["media_reports"]["videomme"].startswith("videomme: 1 media")


def test_markdown_has_our_row_and_the_reported_rows(
    report: tuple[dict[str, Path], dict[str, list[EvalResult]]],
) -> None:
    paths, results = report
    md = paths["markdown"].read_text()
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| Method"))
    for title in ("VideoMME", "EgoLife", "EgoTempo", "egolife-synthetic", "empty-set"):
        assert f"{title} Acc. | {title} Cov. | {title} Prec." in header
    assert header.index("EgoTempo Prec.") < header.index("egolife-synthetic Acc.")
    ours = next(line for line in lines if MEASURED in line)
    s = score(results["videomme"])
    cells = [c.strip() for c in ours.strip("|").split("|")]
    assert cells[0] == f"**qwen3vl-base** {MEASURED}"
    assert cells[1:4] == [f"{100 * s.accuracy:.1f}", f"{100 * s.coverage:.1f}", f"{100 * s.precision:.1f}"]
    assert cells[4:7] == ["—"] * 3  # EgoLife was not run
    assert cells[13:16] == ["—"] * 3  # an empty dataset has no scores
    assert reference.REPORTED_LABEL in md and reference.SOURCE in md
    label_at = next(i for i, line in enumerate(lines) if reference.REPORTED_LABEL in line and line.startswith("|"))
    for method, rows in reference.REPORTED.items():
        line = next(line for line in lines if line.startswith(f"| {method} †"))
        assert lines.index(line) > label_at
        r = rows["videomme"]
        assert f"| {r.accuracy:.1f} | {r.coverage:.1f} | {r.precision:.1f} |" in line
        assert line.rstrip().endswith("| — | — | — | — | — | — |")  # nothing reported on our extra datasets
    assert "| 67.9 | 79.3 | 85.6 | 45.4 | 56.4 | 80.5 | 27.6 | 43.7 | 63.2 |" in md
    assert "### videomme by duration" in md and "### egotempo by question_type" in md
    assert "mean judge score" in md
    assert "/x.mp4 (missing)" in md
    assert "No results for this dataset" in md


def test_plots_are_pngs(report: tuple[dict[str, Path], dict[str, list[EvalResult]]]) -> None:
    paths, _ = report
    expected = {
        "plot_videomme_duration",
        "plot_videomme_task",
        "plot_egotempo_question_type",
        "plot_egolife-synthetic_day",
    }
    assert {k for k in paths if k.startswith("plot_")} == expected
    for key in expected:
        path = paths[key]
        assert path.name == f"{key}.png" and path.parent == paths["json"].parent
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
        assert f"]({path.name})" in paths["markdown"].read_text()
    leftovers = [p.name for p in paths["json"].parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_without_reference_and_only_empty(tmp_path: Path) -> None:
    paths = write_report(
        tmp_path, run_name="r", results_by_dataset={"egotempo": []}, settings={}, include_reference=False
    )
    md = paths["markdown"].read_text()
    assert reference.REPORTED_LABEL not in md and "†" not in md
    assert "| **r** (this run, measured) | — | — | — |" in md
    assert "VideoMME" not in md
    doc = json.loads(paths["json"].read_text())
    assert "reference" not in doc and doc["summary"]["egotempo"]["overall"]["n"] == 0
    assert set(paths) == {"json", "markdown"}
    # rewriting in place replaces the files
    write_report(tmp_path, run_name="r2", results_by_dataset={}, settings={})
    assert json.loads(paths["json"].read_text())["run"] == "r2"


# -- the paper's reported rows --------------------------------------------------------------------
def test_reported_rows_are_consistent() -> None:
    assert len(reference.REPORTED) == 8
    for method, rows in reference.REPORTED.items():
        assert set(rows) == set(reference.DATASETS), method
        for dataset, r in rows.items():
            # Acc = Cov x Prec up to the paper's one-decimal rounding
            assert abs(r.accuracy - r.coverage * r.precision / 100) < 0.15, (method, dataset)
    # the abstract's claim: +6.3 / +7.0 / +5.3 accuracy over the Qwen3-VL-30B-A3B base
    gains = [
        reference.REPORTED[reference.OURS][d].accuracy - reference.REPORTED[reference.BASE_MODEL][d].accuracy
        for d in reference.DATASETS
    ]
    assert gains == pytest.approx([6.3, 7.0, 5.3])
    assert reference.reported("EgoGPT", "egotempo") == reference.ReportedScores(15.0, 33.5, 44.9)
    assert reference.reported("EgoGPT", "videomme-synthetic") is None


def test_reported_rows_match_the_paper_text() -> None:
    import re

    found = {}
    for line in ABSTRACT.read_text().splitlines():
        parts = line.strip().rsplit(" ", 3)
        if len(parts) == 4 and all(re.fullmatch(r"(\d{1,2}\.\d){3}", p) for p in parts[1:]):
            found[parts[0]] = [float(x) for p in parts[1:] for x in re.findall(r"\d{1,2}\.\d", p)]
    assert list(found) == list(reference.REPORTED)
    for method, values in found.items():
        ours = [v for r in reference.REPORTED[method].values() for v in (r.accuracy, r.coverage, r.precision)]
        assert ours == values, method


def test_awkward_names(tmp_path: Path) -> None:
    """'|' must not split a table row, '$x$' must not be read as mathtext, '/' stays out of file names."""
    rows = [
        result(0, "my/set", "correct", {"kind|x": "$a$ | b"}),
        result(1, "my/set", "wrong", {"kind|x": "50% $"}),
    ]
    paths = write_report(tmp_path, run_name="run|1", results_by_dataset={"my/set": rows}, settings={})
    md = paths["markdown"].read_text()
    assert "| $a$ \\| b | 1 | 100.0 | 100.0 | 100.0 |" in md
    assert f"**run\\|1** {MEASURED}" in md
    plot = paths["plot_my_set_kind_x"]
    assert plot.parent == tmp_path and plot.read_bytes().startswith(PNG_SIGNATURE)

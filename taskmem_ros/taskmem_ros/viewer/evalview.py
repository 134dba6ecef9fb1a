"""Evaluation runs as the viewer shows them: the same scores, tables and plots as
``taskmem-eval report`` (evaluation/metrics.py, evaluation/report.py), read from the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from taskmem_ros.evaluation import reference
from taskmem_ros.evaluation.metrics import Scores, breakdown, category_keys, score, summary
from taskmem_ros.evaluation.report import pct
from taskmem_ros.evaluation.types import EvalResult

REPORTED_LABEL = reference.REPORTED_LABEL
score_of = score
__all__ = [
    "REPORTED_LABEL",
    "breakdown",
    "category_keys",
    "cells",
    "plot_png",
    "results_by_dataset",
    "run_view",
    "score_of",
]


@dataclass
class DatasetView:
    name: str
    overall: Scores
    breakdowns: dict[str, dict[str, Scores]]
    open_ended: dict[str, Any] | None
    rows: list[EvalResult] = field(default_factory=list)


@dataclass
class RunView:
    name: str
    datasets: list[DatasetView]
    # the paper's REPORTED rows for the datasets it covers, labelled as such on the page
    reference_rows: list[tuple[str, dict[str, tuple[str, str, str]]]]
    reference_columns: list[tuple[str, str]]


def results_by_dataset(store: Any, run_id: int) -> dict[str, list[EvalResult]]:
    out: dict[str, list[EvalResult]] = {}
    for row in store.eval_answers(run_id):
        out.setdefault(row["dataset"], []).append(EvalResult(**row))
    return out


def run_view(name: str, results: dict[str, list[EvalResult]]) -> RunView:
    datasets = [
        DatasetView(
            name=ds,
            overall=score(rows),
            breakdowns={key: breakdown(rows, key) for key in category_keys(rows)},
            open_ended=summary(rows).get("open_ended"),
            rows=rows,
        )
        for ds, rows in results.items()
    ]
    columns = [(k, t) for k, t in reference.DATASETS.items() if k in results]
    ref_rows = []
    for method, by_ds in reference.REPORTED.items():
        cells = {k: (f"{s.accuracy:.1f}", f"{s.coverage:.1f}", f"{s.precision:.1f}") for k, s in by_ds.items()}
        ref_rows.append((method, cells))
    return RunView(name, datasets, ref_rows if columns else [], columns)


def cells(s: Scores) -> tuple[str, str, str]:
    return (pct(s.accuracy), pct(s.coverage), pct(s.precision)) if s.n else ("—", "—", "—")


@lru_cache(maxsize=64)
def plot_png(
    run: str, dataset: str, key: str, version: tuple[int, int], by_value: tuple[tuple[str, Scores], ...]
) -> bytes:
    """The report's bar plot for one category key; cached per run state (``version``)."""
    from taskmem_ros.evaluation.report import breakdown_png

    return breakdown_png(f"{dataset} by {key} — {run}", dict(by_value))

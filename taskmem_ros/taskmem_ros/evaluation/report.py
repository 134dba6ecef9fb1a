"""A run's report: report.json (everything), report.md (the paper's table layout), PNG plots.

The markdown table is laid out like the paper's main results (one row per method, Acc. / Cov. /
Prec. per dataset, % with one decimal) so a run reads directly against the published rows. Those
rows are the paper's REPORTED figures (``reference.py``) and are labelled so in every place they
appear; datasets outside the paper's three (e.g. ``videomme-synthetic``) get their own columns,
where the paper has nothing ("—"). Files are written atomically (temp file + ``os.replace``), so
a report read while a long run rewrites it is always a whole one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskmem_ros.evaluation import reference
from taskmem_ros.evaluation.metrics import Scores, breakdown, category_keys, score, summary
from taskmem_ros.evaluation.types import EvalResult
from taskmem_ros.fsutil import atomic_write

DASH = "—"
MEASURED = "(this run, measured)"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _esc(text: str) -> str:
    """A table cell: a '|' in a category value or run name must not split the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _plain(text: str) -> str:
    """Plot text: a '$' pair in a category value would otherwise be parsed as mathtext."""
    return str(text).replace("$", r"\$")


def pct(x: float) -> str:
    return f"{100.0 * x:.1f}"


def plot_name(dataset: str, key: str) -> str:
    return f"plot_{_UNSAFE.sub('_', dataset)}_{_UNSAFE.sub('_', key)}.png"


def _columns(datasets: Sequence[str], include_reference: bool) -> list[tuple[str, str]]:
    """(dataset key, column title): the paper's three in its order, then any others present."""
    paper = [(k, t) for k, t in reference.DATASETS.items() if include_reference or k in datasets]
    return paper + [(d, d) for d in datasets if d not in reference.DATASETS]


def _cells(s: Scores | None) -> list[str]:
    if s is None or s.n == 0:
        return [DASH] * 3
    return [pct(s.accuracy), pct(s.coverage), pct(s.precision)]


def results_table(run_name: str, scores: dict[str, Scores], *, include_reference: bool = True) -> list[str]:
    """Markdown lines: our measured row, then the paper's reported rows under their label.
    A run on none of the paper's datasets (e.g. the synthetic CI benchmark) gets its own table,
    and the paper's rows follow in theirs, so nothing invites a comparison that isn't one."""
    if include_reference and scores and not set(scores) & set(reference.DATASETS):
        ours = results_table(run_name, scores, include_reference=False)
        paper = results_table(run_name, {}, include_reference=True)
        title = reference.REPORTED_LABEL[:1].upper() + reference.REPORTED_LABEL[1:]
        paper = [line for line in paper[:2] + paper[4:] if not line.startswith("Our row:")]
        return [*ours, "", f"### {title}", "", *paper]
    cols = _columns(list(scores), include_reference)
    header = ["Method"] + [f"{_esc(title)} {m}" for _, title in cols for m in ("Acc.", "Cov.", "Prec.")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ours = [f"**{_esc(run_name)}** {MEASURED}"] + [c for key, _ in cols for c in _cells(scores.get(key))]
    lines.append("| " + " | ".join(ours) + " |")
    if include_reference:
        lines.append(f"| *{reference.REPORTED_LABEL}:* |" + " |" * (len(header) - 1))
        for method, rows in reference.REPORTED.items():
            cells = []
            for key, _ in cols:
                r = rows.get(key)
                cells += [DASH] * 3 if r is None else [f"{r.accuracy:.1f}", f"{r.coverage:.1f}", f"{r.precision:.1f}"]
            lines.append(f"| {method} † | " + " | ".join(cells) + " |")
    lines += ["", f"Our row: {', '.join(f'{d} n={s.n}' for d, s in scores.items()) or 'no datasets'}."]
    if include_reference:
        lines += ["", f"† {reference.REPORTED_LABEL}. Source: {reference.SOURCE}"]
    return lines


def _breakdown_lines(name: str, rows: list[EvalResult], plots: dict[str, Path]) -> list[str]:
    s = score(rows)
    lines = [f"## {name}", ""]
    if s.n == 0:
        return [*lines, "No results for this dataset (nothing was answered or abstained).", ""]
    lines.append(
        f"{s.n} questions, {s.answered} answered, {s.correct} correct: Accuracy {pct(s.accuracy)} = "
        f"Coverage {pct(s.coverage)} x Precision {pct(s.precision)} (%)."
    )
    open_ended = summary(rows).get("open_ended")
    if open_ended:
        parts = []
        if open_ended["mean_judge_score"] is not None:
            parts.append(f"mean judge score {open_ended['mean_judge_score']:.2f}/5 over {open_ended['n_judged']}")
        if open_ended["mean_anls"] is not None:
            parts.append(f"mean ANLS {open_ended['mean_anls']:.3f} over {open_ended['n_anls']}")
        lines.append(f"Open-ended answers: {'; '.join(parts)}.")
    lines.append("")
    for key in category_keys(rows):
        lines += [f"### {name} by {key}", "", f"| {_esc(key)} | n | Acc. | Cov. | Prec. |", "|---|---|---|---|---|"]
        for value, sc in breakdown(rows, key).items():
            lines.append(f"| {_esc(value)} | {sc.n} | " + " | ".join(_cells(sc)) + " |")
        lines.append("")
        plot = plots.get(plot_name(name, key)[:-4])
        if plot is not None:
            lines += [f"![{name} by {key}]({plot.name})", ""]
    return lines


def plot_breakdown(path: Path, title: str, by_value: dict[str, Scores]) -> Path:
    """Grouped bars of Acc / Cov / Prec (%) per category value, written atomically as PNG."""
    atomic_write(path, breakdown_png(title, by_value))
    return path


def breakdown_png(title: str, by_value: dict[str, Scores]) -> bytes:
    """The PNG bytes of ``plot_breakdown`` (the viewer serves them without writing files).

    Uses the Agg canvas directly (no pyplot), so it neither needs a display nor changes the
    process-wide matplotlib backend of whoever calls it."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = list(by_value)
    x = np.arange(len(values))
    width = 0.27
    fig = Figure(figsize=(max(6.0, 1.6 * len(values) + 2.0), 4.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, attr) in enumerate((("Acc.", "accuracy"), ("Cov.", "coverage"), ("Prec.", "precision"))):
        heights = [100.0 * getattr(by_value[v], attr) for v in values]
        ax.bar(x + (i - 1) * width, heights, width, label=label)
    rotate = len(values) > 6
    # long names ("Information Synopsis") wrap onto two lines instead of running into each other
    labels = [f"{textwrap.fill(_plain(v), 14)}\n(n={by_value[v].n})" for v in values]
    ax.set_xticks(x, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_ylim(0, 115)  # headroom for the legend above the 100% bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("%")
    ax.set_title(_plain(title))
    ax.legend(loc="upper center", ncols=3, fontsize="small", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_report(
    out_dir: str | Path,
    *,
    run_name: str,
    results_by_dataset: dict[str, list[EvalResult]],
    settings: dict[str, Any],
    media_reports: dict[str, str] | None = None,
    include_reference: bool = True,
) -> dict[str, Path]:
    """Write report.json, report.md and ``plot_{dataset}_{key}.png`` (one per category key of
    each dataset); returns {"json": ..., "markdown": ..., "plot_<dataset>_<key>": ...}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {name: list(rows) for name, rows in results_by_dataset.items()}
    scores = {name: score(rows) for name, rows in data.items()}
    paths: dict[str, Path] = {}
    for name, rows in data.items():
        for key in category_keys(rows):
            file = plot_name(name, key)
            title = f"{name} by {key} — {run_name}"
            paths[file[:-4]] = plot_breakdown(out / file, title, breakdown(rows, key))

    doc: dict[str, Any] = {
        "run": run_name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "summary": {name: summary(rows) for name, rows in data.items()},
        "media_reports": media_reports or {},
        "results": {name: [dataclasses.asdict(r) for r in rows] for name, rows in data.items()},
    }
    if include_reference:
        doc["reference"] = {
            "label": reference.REPORTED_LABEL,
            "source": reference.SOURCE,
            "rows": {m: {d: dataclasses.asdict(s) for d, s in rows.items()} for m, rows in reference.REPORTED.items()},
        }
    paths["json"] = out / "report.json"
    atomic_write(paths["json"], (json.dumps(doc, indent=2, default=str) + "\n").encode())

    md = [
        f"# Streaming benchmark report: {run_name}",
        "",
        "Questions arrive online during the stream and are answered from memory only (no raw video). "
        "Accuracy = Coverage x Precision: Coverage = answered / questions, Precision = correct / answered. "
        "All figures in %.",
        "",
        "## Results",
        "",
        *results_table(run_name, scores, include_reference=include_reference),
        "",
    ]
    for name, rows in data.items():
        md += _breakdown_lines(name, rows, paths)
    if media_reports:
        md += ["## Media", ""]
        for name, text in media_reports.items():
            md += [f"### {name}", "", "```", text.rstrip(), "```", ""]
    md += ["## Settings", "", "```json", json.dumps(settings, indent=2, default=str), "```", ""]
    paths["markdown"] = out / "report.md"
    atomic_write(paths["markdown"], "\n".join(md).encode())
    return paths

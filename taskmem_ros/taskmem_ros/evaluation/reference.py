"""The TaskMem paper's main results, as REPORTED there (not measured by this package).

Kept as data so a report can print our measured row next to the published ones, always
labelled as such: these numbers come from the paper's streaming VideoMME / EgoLife /
EgoTempo runs (Qwen3-VL-30B-A3B base, the authors' memory and answering stack), not from
anything this repository ran. Percentages, one decimal, exactly as printed in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = (
    'Zou, He, Qiu, Lin, Li, "Task-Focused Memorization for Multimodal Agents" (TaskMem), ByteDance Seed, '
    "2026: Main Results table (Results on VideoMME, EgoLife, and EgoTempo). Figures as reported in the "
    "paper, not measured by this package."
)
REPORTED_LABEL = "reported in the paper (not measured here)"

# Dataset key (EvalQuestion.dataset) -> the paper's column title, in the paper's order.
DATASETS: dict[str, str] = {"videomme": "VideoMME", "egolife": "EgoLife", "egotempo": "EgoTempo"}

OURS = "TaskMem (Ours)"
BASE_MODEL = "Qwen3-VL-30B-A3B"  # the base model TaskMem is built on (its improvements are over this row)


@dataclass(frozen=True)
class ReportedScores:
    """Percentages: accuracy = coverage x precision / 100, up to the paper's rounding."""

    accuracy: float
    coverage: float
    precision: float


def _row(*values: float) -> dict[str, ReportedScores]:
    return {name: ReportedScores(*values[3 * i : 3 * i + 3]) for i, name in enumerate(DATASETS)}


# Method -> dataset -> (Acc., Cov., Prec.) in %, rows in the paper's order.
REPORTED: dict[str, dict[str, ReportedScores]] = {
    "EgoGPT": _row(44.3, 58.7, 75.5, 19.2, 28.2, 68.1, 15.0, 33.5, 44.9),
    "HippoMM": _row(48.9, 66.6, 73.5, 30.4, 43.4, 70.0, 15.8, 30.8, 51.1),
    "M3-Agent": _row(62.5, 77.7, 80.4, 21.8, 30.8, 70.8, 16.0, 36.3, 44.2),
    "Gemini-1.5-Pro": _row(55.3, 65.9, 83.9, 39.4, 51.6, 76.4, 19.7, 34.3, 57.4),
    "Gemini-2.5-Pro": _row(63.2, 74.8, 84.4, 43.8, 56.6, 77.4, 25.8, 42.3, 61.0),
    "GPT-5.2": _row(67.3, 80.8, 83.3, 34.8, 48.2, 72.2, 32.1, 51.4, 62.4),
    BASE_MODEL: _row(61.6, 74.7, 82.5, 38.4, 52.4, 73.3, 22.3, 38.9, 57.2),
    OURS: _row(67.9, 79.3, 85.6, 45.4, 56.4, 80.5, 27.6, 43.7, 63.2),
}


def reported(method: str, dataset: str) -> ReportedScores | None:
    """The paper's figures for a method on a dataset key, or None if it reports none."""
    return REPORTED.get(method, {}).get(dataset)

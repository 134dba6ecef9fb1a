"""Accuracy = Coverage x Precision, as the TaskMem paper reports streaming QA.

An agent answering from memory may abstain ("not in memory"). The paper scores that with
three numbers over the n questions: Coverage = answered / n, Precision = correct / answered,
Accuracy = correct / n. The identity Acc = Cov x Prec holds only if every correct answer is an
answered one, so a result that is both abstained and correct is rejected here (it would mean
the runner graded an abstention) instead of silently bending the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from taskmem_ros.evaluation.types import EvalResult

UNKNOWN = "unknown"  # the category value of a result that lacks the breakdown key


@dataclass(frozen=True)
class Scores:
    """Counts, not ratios, so scores of parts add up and nothing is rounded twice."""

    n: int
    answered: int
    correct: int

    def __post_init__(self) -> None:
        if not 0 <= self.correct <= self.answered <= self.n:
            raise ValueError(
                f"need 0 <= correct <= answered <= n, got correct={self.correct}, answered={self.answered}, n={self.n}"
            )

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def coverage(self) -> float:
        return self.answered / self.n if self.n else 0.0

    @property
    def precision(self) -> float:
        """0 when nothing was answered (no answer, no precision; keeps Acc = Cov x Prec = 0)."""
        return self.correct / self.answered if self.answered else 0.0

    def __add__(self, other: Scores) -> Scores:
        return Scores(self.n + other.n, self.answered + other.answered, self.correct + other.correct)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "answered": self.answered,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "coverage": self.coverage,
            "precision": self.precision,
        }


def _check(result: EvalResult) -> None:
    if result.abstained and result.correct:
        raise ValueError(
            f"{result.dataset}/{result.qid}: abstained and correct at once; an abstention is never correct"
        )


def score(results: Iterable[EvalResult]) -> Scores:
    n = answered = correct = 0
    for r in results:
        _check(r)
        n += 1
        answered += not r.abstained
        correct += bool(r.correct)
    return Scores(n, answered, correct)


def breakdown(results: Iterable[EvalResult], key: str) -> dict[str, Scores]:
    """Scores per value of ``result.category[key]`` (sorted by value; missing -> "unknown")."""
    groups: dict[str, list[EvalResult]] = {}
    for r in results:
        groups.setdefault(str(r.category.get(key, UNKNOWN)), []).append(r)
    return {value: score(groups[value]) for value in sorted(groups)}


def category_keys(results: Iterable[EvalResult]) -> list[str]:
    return sorted({k for r in results for k in r.category})


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def summary(results: Iterable[EvalResult]) -> dict[str, Any]:
    """Overall scores, a breakdown per category key present, and the open-ended judge means.

    Judge score (0-5) and ANLS are averaged over the results that carry them (answered
    open-ended questions); abstentions carry neither, and coverage already accounts for them.
    Plain dicts, lists and numbers only, so ``json.dumps`` takes it as is.
    """
    rows = list(results)
    out: dict[str, Any] = {"overall": score(rows).as_dict()}
    out["breakdown"] = {
        key: {value: s.as_dict() for value, s in breakdown(rows, key).items()} for key in category_keys(rows)
    }
    judged = [float(r.score) for r in rows if r.score is not None]
    with_anls = [float(r.anls) for r in rows if r.anls is not None]
    if judged or with_anls:
        out["open_ended"] = {
            "n_judged": len(judged),
            "mean_judge_score": _mean(judged),
            "n_anls": len(with_anls),
            "mean_anls": _mean(with_anls),
        }
    if rows:  # answering time per question (retrieval + answerer), abstentions included
        out["mean_latency_s"] = _mean([float(r.latency_s) for r in rows])
    return out

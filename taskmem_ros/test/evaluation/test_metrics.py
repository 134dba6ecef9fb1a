"""Accuracy = Coverage x Precision by construction; breakdowns and summaries."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmem_ros.evaluation.metrics import Scores, breakdown, score, summary
from taskmem_ros.evaluation.types import EvalResult


def result(i: int, *, abstained: bool = False, correct: bool = False, **kw: object) -> EvalResult:
    return EvalResult(
        qid=f"q{i}",
        dataset="videomme",
        stream="s",
        ask_ns=i,
        question="?",
        reference="A",
        prediction="" if abstained else "A",
        abstained=abstained,
        correct=correct,
        **kw,  # type: ignore[arg-type]
    )


outcomes = st.sampled_from(["abstained", "wrong", "correct"])


@settings(max_examples=300, deadline=None)
@given(st.lists(outcomes, max_size=200))
def test_accuracy_is_coverage_times_precision(kinds: list[str]) -> None:
    rows = [result(i, abstained=k == "abstained", correct=k == "correct") for i, k in enumerate(kinds)]
    s = score(rows)
    assert s.n == len(kinds)
    assert s.answered == sum(k != "abstained" for k in kinds)
    assert s.correct == kinds.count("correct")
    assert abs(s.accuracy - s.coverage * s.precision) <= 1e-12
    assert 0.0 <= s.accuracy <= s.coverage <= 1.0 and 0.0 <= s.precision <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(outcomes, st.sampled_from(["a", "b", "c"])), max_size=60))
def test_breakdown_parts_add_up_to_the_whole(rows_spec: list[tuple[str, str]]) -> None:
    rows = [
        result(i, abstained=k == "abstained", correct=k == "correct", category={"type": c})
        for i, (k, c) in enumerate(rows_spec)
    ]
    parts = breakdown(rows, "type")
    assert sum(parts.values(), Scores(0, 0, 0)) == score(rows)
    for s in parts.values():
        assert abs(s.accuracy - s.coverage * s.precision) <= 1e-12


def test_known_values() -> None:
    rows = [result(0, correct=True), result(1, correct=True), result(2), result(3, abstained=True)]
    s = score(rows)
    assert (s.n, s.answered, s.correct) == (4, 3, 2)
    assert s.accuracy == 0.5 and s.coverage == 0.75 and s.precision == pytest.approx(2 / 3)


def test_empty_and_all_abstained() -> None:
    empty = score([])
    assert (empty.n, empty.accuracy, empty.coverage, empty.precision) == (0, 0.0, 0.0, 0.0)
    s = score([result(i, abstained=True) for i in range(5)])
    assert (s.n, s.answered, s.correct) == (5, 0, 0)
    assert (s.accuracy, s.coverage, s.precision) == (0.0, 0.0, 0.0)
    assert summary([])["overall"]["n"] == 0


def test_abstained_and_correct_is_rejected() -> None:
    with pytest.raises(ValueError, match="abstain"):
        score([result(0, abstained=True, correct=True)])
    with pytest.raises(ValueError):
        Scores(n=2, answered=1, correct=2)


def test_breakdown_missing_key_is_unknown() -> None:
    rows = [
        result(0, correct=True, category={"duration": "short"}),
        result(1, category={"duration": "long"}),
        result(2, abstained=True),
    ]
    parts = breakdown(rows, "duration")
    assert list(parts) == ["long", "short", "unknown"]
    assert parts["short"] == Scores(1, 1, 1) and parts["unknown"] == Scores(1, 0, 0)


def test_summary_is_json_and_has_every_key() -> None:
    rows = [
        result(0, correct=True, category={"duration": "short", "task": "count"}, score=4.0, anls=0.9, latency_s=1.0),
        result(1, category={"duration": "long"}, score=1.0, anls=0.1, latency_s=3.0),
        result(2, abstained=True, category={"task": "count"}),
    ]
    out = json.loads(json.dumps(summary(rows)))
    assert out["overall"] == {
        "n": 3,
        "answered": 2,
        "correct": 1,
        "accuracy": pytest.approx(1 / 3),
        "coverage": pytest.approx(2 / 3),
        "precision": 0.5,
    }
    assert set(out["breakdown"]) == {"duration", "task"}
    assert out["breakdown"]["task"]["unknown"]["n"] == 1
    assert out["open_ended"]["mean_judge_score"] == pytest.approx(2.5)
    assert out["open_ended"]["mean_anls"] == pytest.approx(0.5)
    assert out["open_ended"]["n_judged"] == 2
    assert out["mean_latency_s"] == pytest.approx(4 / 3)
    assert "open_ended" not in summary([result(0, correct=True)])

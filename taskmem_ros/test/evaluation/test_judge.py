"""ANLS, reading judge output, and the LLM judge on real (tiny) engines."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmem_ros.evaluation.judge import (
    UNREADABLE,
    ANLSJudge,
    LLMJudge,
    Verdict,
    anls,
    judge_messages,
    levenshtein,
    normalize_answer,
    read_verdict,
)

Q = "What does the person pick up before rubbing their hands together?"
REF = "The oil remover spray."


# -- ANLS -----------------------------------------------------------------------------------------
def test_normalize_answer() -> None:
    assert normalize_answer("  A Spoon. ") == "spoon"
    assert normalize_answer("The oil-remover spray!") == "oil remover spray"
    assert normalize_answer("an apple, the pear and a fig") == "apple pear and fig"
    assert normalize_answer("") == ""


def test_levenshtein() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == levenshtein("abc", "") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert levenshtein("same", "same") == 0


def test_anls_known_values() -> None:
    assert anls("oil remover spray", "oil remover spray") == 1.0
    assert anls("xyz", "abc") == 0.0
    assert anls("A spoon.", "a spoon") == 1.0
    assert anls("oil remover sprya", REF) == pytest.approx(1 - 2 / 17)  # a typo: still high
    assert anls("oil remover sprya", REF) > 0.85
    assert anls("spoon", "spon") == pytest.approx(0.8)
    assert anls("abcd", "abxy") == 0.0  # normalized distance 0.5 is not below tau=0.5
    assert anls("abcd", "abxy", tau=0.6) == pytest.approx(0.5)
    assert anls("spoon", ["knife", "a spoon"]) == 1.0  # max over references
    assert anls("", "") == 1.0 and anls("spoon", "") == 0.0
    with pytest.raises(ValueError):
        anls("spoon", [])


def test_anls_caps_long_strings() -> None:
    long = "word " * 5000
    assert anls(long, long) == 1.0
    assert anls(long + "x", long) == 1.0  # compared on the first 1000 normalized chars


def test_anls_judge() -> None:
    judge = ANLSJudge()
    v = judge.judge(Q, REF, "oil remover spray")
    assert v.correct and v.anls == 1.0 and v.score == 5.0
    v = judge.judge(Q, REF, "a blue towel")
    assert not v.correct and v.score == 0.0
    assert not ANLSJudge(threshold=0.95).judge(Q, REF, "oil remover sprya").correct


# -- reading judge output -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "correct", "score"),
    [
        ('{"pred": "yes", "score": 4}', True, 4.0),
        ('{"pred": "no", "score": 0}', False, 0.0),
        ('<think>the answers differ, so no</think>\n{"pred": "yes", "score": 5}', True, 5.0),
        ("{'pred': 'no', 'score': 2}", False, 2.0),  # a Python dict, as the original rubric asks for
        ('```json\n{"pred": "yes", "score": 3,}\n```', True, 3.0),
        ('Sure! {"pred": "Yes", "score": "4"} Hope this helps.', True, 4.0),
        ('{"pred": "yes", "score": 4.8}', True, 4.8),
        ('{"pred": "yes", "score": 9}', True, 5.0),  # clamped
        ("yes, score 4", True, 4.0),
        ("pred: no\nscore: 1", False, 1.0),
        ("No. 1", False, 1.0),
        ('{"pred": "yes"}', True, 5.0),  # score imputed from pred
        ('{"score": 2} so the answer is no', False, 2.0),
    ],
)
def test_read_verdict(text: str, correct: bool, score: float) -> None:
    v = read_verdict(text)
    assert v is not None
    assert (v.correct, v.score) == (correct, score)


@pytest.mark.parametrize(
    "text",
    ["", "garbage ## 12 @@", "yes or no, hard to say", "<think>still thinking, yes", '{"score": 3}', "ĠĊ<|x|>"],
)
def test_read_verdict_unreadable(text: str) -> None:
    assert read_verdict(text) is None


def test_read_verdict_counts() -> None:
    c: Counter[str] = Counter()
    read_verdict("<think>x</think>{'pred': 'yes', 'score': 3}", c)
    read_verdict('{"pred": "yes", "score": 12}', c)
    read_verdict("yes", c)
    assert c["judge_think_stripped"] == 1 and c["judge_python_dict"] == 1
    assert c["judge_score_clamped"] == 1 and c["judge_score_imputed"] == 1
    assert c["judge_read_json"] == 2 and c["judge_read_text"] == 1


# -- the LLM judge on real engines ----------------------------------------------------------------
ITEMS = [
    (Q, REF, "The oil remover spray."),
    (Q, REF, "a red cup"),
    ("How many times does the person open the fridge?", "Twice.", "two times"),
]


def _well_formed(v: Verdict) -> None:
    assert isinstance(v, Verdict) and isinstance(v.correct, bool)
    assert 0.0 <= v.score <= 5.0 and 0.0 <= v.anls <= 1.0 and v.rationale


@pytest.fixture(scope="module")
def random_engine(tiny_qwen3vl: Path) -> Iterator[object]:
    from taskmem_ros.config import ModelConfig
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    engine = TransformersEngine(ModelConfig(model_id=str(tiny_qwen3vl), device_map="cpu"))
    yield engine
    engine.close()


def test_llm_judge_on_random_weights(random_engine: object) -> None:
    """Random weights emit noise: verdicts stay well-formed, the unreadable ones are counted, and
    the batch is one generate call."""
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    assert isinstance(random_engine, TransformersEngine)
    judge = LLMJudge(random_engine, max_new_tokens=16)
    calls = random_engine.stats["generate_calls"]
    verdicts = judge.judge_many(ITEMS)
    assert random_engine.stats["generate_calls"] == calls + 1
    assert len(verdicts) == len(ITEMS)
    for v, (_, ref, pred) in zip(verdicts, ITEMS, strict=True):
        _well_formed(v)
        assert v.anls == anls(pred, ref)
        if v.rationale == UNREADABLE:
            assert not v.correct and v.score == 0.0
    unreadable = sum(v.rationale == UNREADABLE for v in verdicts)
    assert unreadable >= 1  # this checkpoint (seed 0, greedy) emits only newlines
    assert judge.stats["judge_unreadable"] == unreadable
    assert judge.stats["judge_unreadable"] + judge.stats["judge_readable"] == judge.stats["judge_requests"] == 3
    assert judge.judge_many([]) == []
    _well_formed(judge.judge(*ITEMS[0]))
    assert judge.stats["judge_requests"] == 4


def test_llm_judge_requests_use_the_base_model_greedily(random_engine: object) -> None:
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    assert isinstance(random_engine, TransformersEngine)
    req = LLMJudge(random_engine).request(*ITEMS[1])
    assert not req.use_adapter and req.temperature == 0.0 and not req.enable_thinking
    assert req.json_schema is not None and req.max_new_tokens == 64
    assert req.messages[0]["content"].startswith("You are an intelligent chatbot designed for evaluating")
    assert "Correct Answer: The oil remover spray." in req.messages[1]["content"]
    assert "Predicted Answer: a red cup" in req.messages[1]["content"]


@pytest.fixture(scope="module")
def taught_judge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3-VL fitted to grade ITEMS[0] yes/5 and ITEMS[1] no/1 through the rubric prompt."""
    from taskmem_ros.llm.tiny import build_tiny_qwen3vl, teach

    path = build_tiny_qwen3vl(tmp_path_factory.mktemp("taught_judge"), seed=1)
    examples = [
        (judge_messages(*ITEMS[0]), '{"pred": "yes", "score": 5}'),
        (judge_messages(*ITEMS[1]), '{"pred": "no", "score": 1}'),
    ]
    return teach(path, examples, steps=60)


def test_llm_judge_reads_real_model_verdicts(taught_judge: Path) -> None:
    from taskmem_ros.config import ModelConfig
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    engine = TransformersEngine(ModelConfig(model_id=str(taught_judge), device_map="cpu", dtype="float32"))
    try:
        judge = LLMJudge(engine)
        yes, no = judge.judge_many(ITEMS[:2])
    finally:
        engine.close()
    assert (yes.correct, yes.score, yes.anls) == (True, 5.0, 1.0)
    assert (no.correct, no.score) == (False, 1.0)
    assert judge.stats["judge_readable"] == 2 and judge.stats["judge_unreadable"] == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_generation_errors_fall_back_to_anls() -> None:
    """A real OpenAI engine with nothing listening: every request fails -> ANLS grades it."""
    from taskmem_ros.config import EndpointConfig
    from taskmem_ros.llm.openai_engine import OpenAIEngine

    engine = OpenAIEngine(
        EndpointConfig(base_url=f"http://127.0.0.1:{_closed_port()}/v1", max_retries=0, timeout_s=5.0)
    )
    try:
        judge = LLMJudge(engine)
        verdicts = judge.judge_many(ITEMS)
    finally:
        engine.close()
    assert judge.stats["judge_generation_errors"] == 3
    assert judge.stats["judge_unreadable"] == 0
    assert verdicts[0].correct and verdicts[0].anls == 1.0 and verdicts[0].score == 5.0
    assert not verdicts[1].correct
    assert all(v.rationale.startswith("judge failed") for v in verdicts)
    assert all("anls" in v.rationale for v in verdicts)


def test_model_free_judge_credits_a_right_answer_inside_a_sentence() -> None:
    from taskmem_ros.evaluation.judge import ANLSJudge, token_f1

    judge = ANLSJudge()
    inside = judge.judge("Which bay?", "Bay 3.", "Text visible: 'BAY 3'.")
    assert inside.correct and inside.anls < 0.5  # ANLS alone would fail it
    assert token_f1("small plastic cup", "The person uses a small plastic cup.") == pytest.approx(0.75)
    wrong = judge.judge("Which bay?", "Bay 3.", "Text visible: 'DOCK 7'.")
    assert not wrong.correct
    assert not judge.judge("Where?", "In the blue cabinet.", "The meeting is on Friday.").correct

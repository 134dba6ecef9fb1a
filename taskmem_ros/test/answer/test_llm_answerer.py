"""The LLM answerer reads as-of memories only, and always returns a well-formed Answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskmem_ros.answer import make_answerer
from taskmem_ros.answer.llm_answerer import LLMAnswerer, memory_lines, strip_option_letter
from taskmem_ros.config import TaskMemConfig, from_nested
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import MemoryDraft

S = 10**9
FACTS = [
    ("Alice put the red keys in the kitchen drawer.", 10),
    ("The robot charged at dock 7.", 40),
    ("Bob said the meeting moved to three o'clock.", 70),
]
QUESTION = "Where are the red keys?"
CHOICES = ["A. On the sofa", "B. In the kitchen drawer", "C. At dock 7", "D. In the car"]


@pytest.fixture
def filled(memory: EpisodicStore) -> EpisodicStore:
    memory.add_entries("robot", [MemoryDraft(text=t, start_ns=s * S, end_ns=(s + 10) * S) for t, s in FACTS])
    return memory


@pytest.fixture
def tiny_answerer(filled: EpisodicStore, tiny_qwen3vl: Path) -> Iterator[LLMAnswerer]:
    cfg = from_nested(
        TaskMemConfig,
        {
            "answer": {"backend": "qwen3vl", "max_new_tokens": 16},
            "model": {"model_id": str(tiny_qwen3vl), "device_map": "cpu"},
        },
    )
    answerer = make_answerer(cfg, filled)
    assert isinstance(answerer, LLMAnswerer)
    yield answerer
    answerer.close()


def _read(answerer: LLMAnswerer, output: str, choices: list[str] | None = CHOICES, as_of: int = 100):  # type: ignore[no-untyped-def]
    ranked = answerer.retriever.retrieve(QUESTION, as_of_ns=as_of * S, choices=choices)
    memories = memory_lines(ranked, as_of * S, answerer.cfg.memory_chars)
    return answerer.read(output, memories, ranked, choices), memories


def test_prompt_lists_as_of_memories_with_age_and_lettered_options(tiny_answerer: LLMAnswerer) -> None:
    ranked = tiny_answerer.retriever.retrieve(QUESTION, as_of_ns=60 * S, choices=CHOICES)
    req = tiny_answerer.request(QUESTION, memory_lines(ranked, 60 * S, 4000), 60 * S, CHOICES)
    prompt = req.messages[1]["content"]
    assert "Alice put the red keys" in prompt and "40 s before the question" in prompt
    assert "meeting moved" not in prompt  # written after the question was asked
    assert "B. In the kitchen drawer" in prompt and "E. Not in memory" in prompt
    assert "A. A." not in prompt  # "A. " prefixes of dataset options are not doubled
    assert req.use_adapter is False  # the Phase Two adapter shapes memorizing, not answering


@pytest.mark.parametrize(
    ("output", "index", "abstained"),
    [
        ('{"answer": "B", "evidence": [1]}', 1, False),
        ('<think>keys... drawer</think>{"answer": "B"}', 1, False),
        ("The answer is B.", 1, False),
        ("In the kitchen drawer", 1, False),
        ('{"answer": "E", "evidence": []}', None, True),
        ("", None, True),
        ("\x00garbage{{", None, True),
        ('{"answer": "Z"}', None, True),
    ],
)
def test_multiple_choice_outputs(tiny_answerer: LLMAnswerer, output: str, index: int | None, abstained: bool) -> None:
    ans, _ = _read(tiny_answerer, output)
    assert ans.choice_index == index and ans.abstained is abstained
    assert ans.evidence_ids  # always auditable
    if index is not None:
        assert ans.text == CHOICES[index]


def test_cited_evidence_maps_to_memory_ids(tiny_answerer: LLMAnswerer) -> None:
    ans, memories = _read(tiny_answerer, '{"answer": "B", "evidence": [99, 2]}')
    assert ans.evidence_ids == [memories[1].id]  # 99 is ignored, 2 is resolved


def test_open_questions_and_abstention(tiny_answerer: LLMAnswerer) -> None:
    ans, _ = _read(tiny_answerer, '{"answer": "In the kitchen drawer.", "evidence": [1]}', choices=None)
    assert not ans.abstained and ans.text == "In the kitchen drawer." and ans.choice_index is None
    ans, _ = _read(tiny_answerer, '{"answer": "Insufficient information"}', choices=None)
    assert ans.abstained


def test_no_memories_abstains_without_calling_the_model(tiny_answerer: LLMAnswerer) -> None:
    calls = tiny_answerer.engine.stats["generate_calls"]  # type: ignore[attr-defined]
    ans = tiny_answerer.answer(QUESTION, as_of_ns=1, choices=CHOICES)  # before any memory
    assert ans.abstained and tiny_answerer.engine.stats["generate_calls"] == calls  # type: ignore[attr-defined]


def test_bad_questions_are_rejected(tiny_answerer: LLMAnswerer) -> None:
    with pytest.raises(ValueError, match="question"):
        tiny_answerer.answer("   ", as_of_ns=0)
    with pytest.raises(ValueError, match="choices"):
        tiny_answerer.answer("q", as_of_ns=0, choices=["x"] * 30)


def test_strip_option_letter() -> None:
    assert strip_option_letter("A. On the sofa") == "On the sofa"
    assert strip_option_letter("(c) Red") == "Red"
    assert strip_option_letter("Apple pie") == "Apple pie"


def test_real_tiny_model_answers_are_well_formed(filled: EpisodicStore, tiny_answerer: LLMAnswerer) -> None:
    """Random weights: whatever comes out, the result is an abstention or a valid choice."""
    for choices in (CHOICES, None):
        ans = tiny_answerer.answer(QUESTION, as_of_ns=100 * S, choices=choices)
        assert ans.abstained or (choices is None or ans.choice_index in range(4))
        assert set(ans.evidence_ids) <= {r.id for r in filled.timeline("robot", limit=10)}
        assert ans.latency_s > 0

"""RetrievalAnswerer on real memories: picks supported choices, abstains otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from taskmem_ros.answer import INSUFFICIENT, RetrievalAnswerer, calibrate_threshold
from taskmem_ros.config import AnswerConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import NS_PER_S, MemoryDraft

HOUSE = [
    "I put the red mug on the top shelf in the kitchen.",
    "Alice left her car keys on the hallway table.",
    "The weather outside was sunny and warm.",
    "Bob watered the plants on the balcony.",
    "Two delivery boxes arrived at the front door at noon.",
]


def _remember(store: EpisodicStore, texts: list[str], start_s: int = 0) -> list[int]:
    drafts = [
        MemoryDraft(t, start_ns=(start_s + 10 * i) * NS_PER_S, end_ns=(start_s + 10 * i + 10) * NS_PER_S)
        for i, t in enumerate(texts)
    ]
    return [r.id for r in store.add_entries("robot", drafts)]


@pytest.fixture
def house(memory: EpisodicStore) -> tuple[EpisodicStore, list[int]]:
    return memory, _remember(memory, HOUSE)


@pytest.mark.parametrize(
    ("question", "choices", "expected", "evidence"),
    [
        ("Where is the red mug?", ["kitchen shelf", "garage", "bedroom"], 0, 0),
        ("Where did Alice leave her keys?", ["kitchen", "car", "hallway table"], 2, 1),
        ("Who watered the plants?", ["Alice", "Bob", "Carol"], 1, 3),
        ("How many boxes arrived?", ["one", "two", "three"], 1, 4),
    ],
)
def test_multiple_choice_picks_supported_option(
    house: tuple[EpisodicStore, list[int]], question: str, choices: list[str], expected: int, evidence: int
) -> None:
    store, ids = house
    ans = RetrievalAnswerer(store, AnswerConfig()).answer(question, as_of_ns=100 * NS_PER_S, choices=choices)
    assert not ans.abstained and ans.choice_index == expected and ans.text == choices[expected]
    assert ans.evidence_ids[0] == ids[evidence]
    assert 0 < ans.confidence <= 1 and ans.latency_s > 0


@pytest.mark.parametrize(
    ("question", "choices"),
    [
        ("What color is the bicycle?", ["blue", "green", "red"]),
        ("What is the capital of France?", ["Paris", "Rome", "Berlin"]),
    ],
)
def test_multiple_choice_abstains_when_memory_is_irrelevant(
    house: tuple[EpisodicStore, list[int]], question: str, choices: list[str]
) -> None:
    ans = RetrievalAnswerer(house[0], AnswerConfig()).answer(question, as_of_ns=100 * NS_PER_S, choices=choices)
    assert ans.abstained and ans.choice_index is None and ans.text == INSUFFICIENT


def test_answers_use_only_memories_observed_by_the_question_time(house: tuple[EpisodicStore, list[int]]) -> None:
    store, _ = house
    later = _remember(store, ["Later the red mug was moved to the garage."], start_s=200)
    answerer = RetrievalAnswerer(store, AnswerConfig())
    choices = ["kitchen shelf", "garage", "bedroom"]
    before = answerer.answer("Where is the red mug?", as_of_ns=100 * NS_PER_S, choices=choices)
    after = answerer.answer("Where is the red mug?", as_of_ns=300 * NS_PER_S, choices=choices)
    assert before.choice_index == 0 and later[0] not in before.evidence_ids
    assert after.choice_index == 1 and after.evidence_ids[0] == later[0]


def test_open_question_returns_evidence_sentence(house: tuple[EpisodicStore, list[int]]) -> None:
    store, ids = house
    answerer = RetrievalAnswerer(store, AnswerConfig())
    ans = answerer.answer("Where did Alice leave her keys?", as_of_ns=100 * NS_PER_S)
    assert not ans.abstained and ans.text.startswith(HOUSE[1]) and ans.evidence_ids[0] == ids[1]
    ans = answerer.answer("Who won the football match yesterday?", as_of_ns=100 * NS_PER_S)
    assert ans.abstained and ans.text == INSUFFICIENT


def test_empty_memory_abstains(memory: EpisodicStore) -> None:
    answerer = RetrievalAnswerer(memory, AnswerConfig())
    for choices in (None, ["a", "b"]):
        ans = answerer.answer("Where is the mug?", as_of_ns=10**18, choices=choices)
        assert ans.abstained and ans.evidence_ids == [] and ans.text == INSUFFICIENT


def test_future_only_memory_abstains(memory: EpisodicStore) -> None:
    _remember(memory, ["The red mug is in the garage."], start_s=1000)
    ans = RetrievalAnswerer(memory).answer("Where is the red mug?", as_of_ns=5 * NS_PER_S, choices=["garage", "attic"])
    assert ans.abstained and ans.evidence_ids == []


def test_margin_forces_abstention_between_equal_options(house: tuple[EpisodicStore, list[int]]) -> None:
    ans = RetrievalAnswerer(house[0], AnswerConfig(margin=0.5)).answer(
        "Where is the red mug?", as_of_ns=100 * NS_PER_S, choices=["kitchen shelf", "garage"]
    )
    assert ans.abstained and ans.confidence > AnswerConfig().abstain_threshold  # supported, but not decisively


def test_stream_scoping(memory: EpisodicStore) -> None:
    memory.add_entries("other", [MemoryDraft("The red mug is in the attic.", end_ns=NS_PER_S)])
    answerer = RetrievalAnswerer(memory)
    ans = answerer.answer("Where is the red mug?", as_of_ns=10 * NS_PER_S, choices=["attic", "garage"], stream="robot")
    assert ans.abstained
    ans = answerer.answer("Where is the red mug?", as_of_ns=10 * NS_PER_S, choices=["attic", "garage"], stream="other")
    assert ans.choice_index == 0


def test_calibrate_threshold_maximises_accuracy_with_abstention() -> None:
    scores = [0.9, 0.8, 0.7, 0.45, 0.4, 0.2, 0.1]
    labels = [True, True, True, False, False, False, True]
    t = calibrate_threshold(scores, labels)
    assert 0.45 < t <= 0.7  # answer the three confident ones, abstain on the rest (6/7 right)
    assert calibrate_threshold([0.3, 0.6], [True, True]) <= 0.3  # always right: never abstain
    assert calibrate_threshold([0.3, 0.6], [False, False]) > 0.6  # always wrong: always abstain
    rng = np.random.default_rng(0)
    s = rng.uniform(-1, 1, 500)
    y = s + rng.normal(0, 0.1, 500) > 0.2
    assert abs(calibrate_threshold(s, y) - 0.2) < 0.1
    with pytest.raises(ValueError):
        calibrate_threshold([0.1], [True, False])
    with pytest.raises(ValueError):
        calibrate_threshold([], [])


def test_question_validation(memory: EpisodicStore) -> None:
    with pytest.raises(ValueError, match="question"):
        RetrievalAnswerer(memory).answer("  ", as_of_ns=0)

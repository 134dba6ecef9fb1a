"""Full-text, vector and hybrid search with as-of, time-window and stream filters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from store_helpers import drafts

from taskmem_ros.config import StoreConfig
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import NS_PER_S, MemoryDraft

pytestmark = pytest.mark.backends("sqlite", "postgresql")

MEMORIES = [
    "Alice placed the red mug on the kitchen shelf",
    "Bob watered the tomato plants on the balcony",
    "The delivery driver left a parcel at the front door",
    "Carol charged her laptop in the office",
    "The cat slept on the sofa all afternoon",
    "Dave repaired the bicycle tyre in the garage",
    "A sign in the hallway reads 'wet floor'",
    "Erin baked bread and left it to cool on the counter",
]
MODES = ("hybrid", "fts", "vector")


@pytest.fixture
def filled(store: EpisodicStore) -> EpisodicStore:
    store.add_entries("robot", drafts(MEMORIES))  # entry i observed in [10 i, 10 i + 10] s
    return store


@pytest.mark.parametrize("mode", MODES)
def test_relevant_entry_ranks_first(filled: EpisodicStore, mode: str) -> None:
    hits = filled.search("where is the red mug?", mode=mode)
    assert hits and hits[0].record.text == MEMORIES[0]
    hits = filled.search("bicycle tyre garage", mode=mode)
    assert hits[0].record.text == MEMORIES[5]
    if mode != "vector":  # cosine may be negative; fused and bm25 scores are not
        assert all(h.score > 0 for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("mode", MODES)
def test_as_of_excludes_entries_not_yet_observed(filled: EpisodicStore, mode: str) -> None:
    # the garage memory ends at 60 s: invisible as of 59 s, visible as of 60 s
    early = filled.search("bicycle tyre garage", as_of_ns=59 * NS_PER_S, mode=mode)
    assert all(h.record.end_ns <= 59 * NS_PER_S for h in early)
    assert MEMORIES[5] not in [h.record.text for h in early]
    at = filled.search("bicycle tyre garage", as_of_ns=60 * NS_PER_S, mode=mode)
    assert at[0].record.text == MEMORIES[5]
    assert filled.search("red mug", as_of_ns=0, mode=mode) == []


@pytest.mark.parametrize("mode", MODES)
def test_time_window_selects_overlapping_entries(filled: EpisodicStore, mode: str) -> None:
    hits = filled.search("the", start_ns=25 * NS_PER_S, end_ns=41 * NS_PER_S, limit=20, mode=mode)
    texts = {h.record.text for h in hits}
    assert texts <= {MEMORIES[2], MEMORIES[3], MEMORIES[4]}
    if mode != "fts":  # vector search returns every visible entry when asked for 20
        assert texts == {MEMORIES[2], MEMORIES[3], MEMORIES[4]}


@pytest.mark.parametrize("mode", MODES)
def test_stream_filter(filled: EpisodicStore, mode: str) -> None:
    filled.add_entries("other", [MemoryDraft("Alice placed the red mug in the dishwasher", end_ns=1)])
    assert {h.record.stream for h in filled.search("red mug", stream="other", mode=mode)} == {"other"}
    assert {h.record.stream for h in filled.search("red mug", mode=mode)} == {"robot", "other"}
    assert filled.search("red mug", stream="nobody", mode=mode) == []


def test_limit_and_mode_validation(filled: EpisodicStore) -> None:
    assert len(filled.search("the", limit=3, mode="vector")) == 3
    assert filled.search("the", limit=0) == []
    with pytest.raises(ValueError, match="mode"):
        filled.search("x", mode="regex")
    with pytest.raises(ValueError, match="limit"):
        filled.search("x", limit=-1)
    with pytest.raises(TypeError):
        filled.search("x", as_of_ns="yesterday")  # type: ignore[arg-type]


def test_new_entries_become_searchable_immediately(filled: EpisodicStore) -> None:
    filled.search("anything")  # loads the RAM index
    filled.add_entries("robot", [MemoryDraft("The umbrella is in the blue bucket", start_ns=0, end_ns=5)])
    for mode in MODES:
        assert filled.search("umbrella bucket", mode=mode)[0].record.text == "The umbrella is in the blue bucket"


def test_writes_from_another_store_instance_are_seen(make_store: Callable[..., EpisodicStore]) -> None:
    reader = make_store("shared.db")
    writer = make_store("shared.db")
    writer.add_entries("robot", drafts(MEMORIES[:3]))
    assert reader.search("parcel front door")[0].record.text == MEMORIES[2]
    writer.add_entries("robot", drafts(["The keys are under the doormat"], start_s=500))
    assert reader.search("keys doormat")[0].record.text == "The keys are under the doormat"


@pytest.mark.backends("sqlite")  # sqlite-vec's KNN against the RAM index
def test_vec0_knn_agrees_with_ram_index(make_store: Callable[..., EpisodicStore]) -> None:
    ram = make_store("v.db")
    sql = make_store("v.db", vector_search="vec0")
    ram.add_entries("robot", drafts(MEMORIES))
    ram.add_entries("other", drafts(MEMORIES[:2]))
    for q, kwargs in [
        ("red mug kitchen", {}),
        ("bread counter", {"as_of_ns": 80 * NS_PER_S}),
        ("bread counter", {"as_of_ns": 79 * NS_PER_S}),
        ("the", {"start_ns": 25 * NS_PER_S, "end_ns": 41 * NS_PER_S}),
        ("red mug", {"stream": "other"}),
    ]:
        a = [(h.record.id, round(h.score, 5)) for h in ram.search(q, mode="vector", **kwargs)]
        b = [(h.record.id, round(h.score, 5)) for h in sql.search(q, mode="vector", **kwargs)]
        assert a == b, q


def test_common_terms_stay_correct_under_a_small_budget(make_store: Callable[..., EpisodicStore]) -> None:
    """With fts_budget=100 and 600 entries sharing words, the bounded paths still find
    the entry that has all query words, and never return a future entry."""
    store = make_store(fts_budget=100, candidate_pool=20)
    filler = [f"the robot saw a box near door {i}" for i in range(600)]
    store.add_entries("robot", drafts(filler))
    store.add_entries("robot", drafts(["the robot saw a green box near the kitchen door"], start_s=6000))
    store.add_entries("robot", drafts(["a green box near the kitchen door was opened later"], start_s=9000))
    hits = store.search("green box kitchen door", mode="fts", as_of_ns=8000 * NS_PER_S)
    assert hits[0].record.text == "the robot saw a green box near the kitchen door"
    assert all(h.record.end_ns <= 8000 * NS_PER_S for h in hits)
    common = store.search("robot box door", mode="fts", as_of_ns=3000 * NS_PER_S)  # every term too common
    assert common and all(h.record.end_ns <= 3000 * NS_PER_S for h in common)


def test_minilm_hybrid_finds_paraphrase(tmp_path, minilm) -> None:
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}"), embedder=minilm) as store:
        store.add_entries("robot", drafts(MEMORIES))
        hits = store.search("Where did someone put the coffee cup?", limit=3)
        assert hits[0].record.text == MEMORIES[0]  # no shared content word with "coffee cup"
        hits = store.search("who fixed the bike?", mode="vector", limit=3)
        assert hits[0].record.text == MEMORIES[5]

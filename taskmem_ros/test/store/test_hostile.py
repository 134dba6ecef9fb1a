"""User text is never FTS5 syntax or SQL: hostile queries return results or [], never raise."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import drafts

from taskmem_ros.store import EpisodicStore
from taskmem_ros.store.lexical import MAX_TERMS, query_terms, quote

pytestmark = pytest.mark.backends("sqlite", "postgresql")

HOSTILE = [
    "'; DROP TABLE memory_entries; --",
    '"; DROP TABLE memory_entries; --',
    "NEAR(",
    "NEAR(red mug, 2)",
    "red NEAR/3 mug",
    "*",
    "mug*",
    '"',
    '""',
    '"unbalanced',
    "text:mug",
    "memory_fts:red",
    "{text}: mug",
    "((((red",
    "red)))",
    "red AND OR NOT mug",
    "NOT",
    "^red",
    "red\x00mug",
    "\x00",
    "",
    "   ",
    "x" * 100_000,
    "red mug " * 20_000,
    "🙂🔥 mug 🍵",
    "🙂",
    "ℝ𝕖𝕕 ｍｕｇ",
    "\\' OR 1=1 --",
    "rowid = 1",
    "%_'[]",
    "a" * 5000 + " mug",
]


@pytest.fixture
def filled(store: EpisodicStore) -> EpisodicStore:
    store.add_entries("robot", drafts(["The red mug is on the shelf", "Text: a NEAR miss with the mug"]))
    return store


@pytest.mark.parametrize("query", HOSTILE)
@pytest.mark.parametrize("mode", ["hybrid", "fts", "vector"])
def test_hostile_queries_never_raise(filled: EpisodicStore, query: str, mode: str) -> None:
    hits = filled.search(query, mode=mode, as_of_ns=10**12)
    assert isinstance(hits, list)
    assert filled.count_entries() == 2  # nothing was dropped or altered


def test_operators_are_searched_as_words(filled: EpisodicStore) -> None:
    assert filled.search("NEAR(", mode="fts")[0].record.text == "Text: a NEAR miss with the mug"
    assert filled.search("mug*", mode="fts")  # the word "mug", not a prefix query error


def test_query_terms_are_bounded_and_quoted() -> None:
    assert query_terms("Where is the RED mug?!") == ["red", "mug"]
    assert query_terms("where is it") == ["where", "is", "it"]  # only stop-words: keep them
    assert len(query_terms(" ".join(f"w{i}" for i in range(1000)))) == MAX_TERMS
    assert quote('a"b') == '"a""b"'
    assert query_terms("café Straße") == ["cafe", "straße"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(filled: EpisodicStore, query: str) -> None:
    for mode in ("fts", "hybrid"):
        assert isinstance(filled.search(query, mode=mode), list)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(['"', "(", ")", "*", ":", "^", "NEAR", "AND", "OR", "NOT", "+", "-", "mug", "\x00", "{", "}"]),
        max_size=30,
    )
)
def test_fts_syntax_soup_never_raises(filled: EpisodicStore, parts: list[str]) -> None:
    assert isinstance(filled.search("".join(parts), mode="fts"), list)
    assert isinstance(filled.search(" ".join(parts), mode="fts"), list)

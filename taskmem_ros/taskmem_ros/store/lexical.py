"""Turning untrusted question text into safe FTS5 expressions.

User text is never handed to FTS5 as syntax: we tokenise it ourselves (the same
letters-and-digits rule as FTS5's ``unicode61`` tokenizer), drop stop-words, bound the
number and length of terms, and emit each term as a double-quoted string with inner
quotes doubled. Operators, column filters, ``NEAR(``, ``*``, parentheses and NUL bytes
therefore can only ever be literal (and are in fact dropped as separators).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

MAX_QUERY_CHARS = 4096  # a 100 kB paste is truncated, not tokenised
MAX_TERMS = 24
MAX_TERM_CHARS = 64

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

STOPWORDS = frozenset(
    str.split(
        """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    s t don didn doesn isn wasn weren won ve ll re d m"""
    )
)


def fold(term: str) -> str:
    """Lower-case and strip diacritics, like ``unicode61 remove_diacritics 2``."""
    decomposed = unicodedata.normalize("NFKD", term.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def query_terms(text: str, *, fold_accents: bool = True) -> list[str]:
    """Distinct search terms of ``text`` in first-seen order (stop-words dropped unless
    nothing else is left, so "where is it?" still searches for something).

    ``fold_accents=False`` only lower-cases, matching PostgreSQL's ``simple`` text search
    configuration (which keeps diacritics)."""
    if not isinstance(text, str):
        raise TypeError(f"query must be str, got {type(text).__name__}")
    text = text[:MAX_QUERY_CHARS].replace("\x00", " ")
    seen: dict[str, None] = {}
    for raw in _WORD.findall(text):
        term = (fold(raw) if fold_accents else raw.lower())[:MAX_TERM_CHARS]
        if term:
            seen.setdefault(term, None)
    terms = list(seen)
    content = [t for t in terms if t not in STOPWORDS]
    return (content or terms)[:MAX_TERMS]


def quote(term: str) -> str:
    """An FTS5 string literal: the term in double quotes, inner quotes doubled."""
    return '"' + term.replace('"', '""') + '"'


def any_of(terms: Iterable[str]) -> str:
    return " OR ".join(quote(t) for t in terms)


def all_of(terms: Iterable[str]) -> str:
    return " AND ".join(quote(t) for t in terms)


def overlap(a: str, b: str) -> float:
    """Share of the content words of ``a`` that also occur in ``b`` (0..1), for tie-breaks."""
    ta = set(query_terms(a))
    if not ta:
        return 0.0
    tb = {fold(w) for w in _WORD.findall(b[:MAX_QUERY_CHARS])}
    return len(ta & tb) / len(ta)


def tokens(text: str) -> list[str]:
    """Folded word tokens of ``text`` (same rule as the FTS5 tokenizer)."""
    return [fold(w) for w in _WORD.findall(text)]


def bm25(
    texts: Sequence[str], terms: Sequence[str], df: Mapping[str, int], n_docs: int, k1: float = 1.2, b: float = 0.75
) -> np.ndarray:
    """Okapi bm25 of each text for ``terms`` (FTS5's formula, positive = better).

    Used on a few hundred candidates whose terms are too common for FTS5's own bm25 to be
    cheap; average length is taken over the candidates, which only shifts the length
    normalisation slightly.
    """
    docs = [tokens(t) for t in texts]
    if not docs:
        return np.zeros(0)
    avg = max(sum(len(d) for d in docs) / len(docs), 1.0)
    idf = {t: max(math.log((n_docs - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)), 1e-6) for t in terms}
    out = np.zeros(len(docs))
    for i, d in enumerate(docs):
        norm = k1 * (1 - b + b * len(d) / avg)
        for t in terms:
            tf = d.count(t)
            if tf:
                out[i] += idf[t] * tf * (k1 + 1) / (tf + norm)
    return out


def budget_terms(df: Mapping[str, int], budget: int) -> tuple[list[str], list[str]]:
    """(present, chosen): the terms that occur at all, rarest first, and the longest rarest-first
    prefix of them whose postings fit ``budget`` (an empty ``chosen`` means even the rarest
    term is too common for the fast path). Shared by the SQLite and PostgreSQL searchers."""
    ordered = sorted((t for t in df if df[t] > 0), key=lambda t: df[t])
    chosen: list[str] = []
    total = 0
    for t in ordered:
        if total + df[t] > budget:
            break
        chosen.append(t)
        total += df[t]
    return ordered, chosen

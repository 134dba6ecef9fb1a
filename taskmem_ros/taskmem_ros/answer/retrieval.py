"""CPU baseline answerer: answer a task from retrieved memories only, or abstain.

Multiple choice: each option is scored by its best-supporting memory, averaging two
cosines against that memory: "question + option" (does the memory answer *this*
question with this option?) and the option alone (the few option words are otherwise
drowned by the shared question text: "car" vs "hallway table" for a memory "Alice left
her car keys on the hallway table" differ by 0.003 with question+option, by 0.15 alone).
Memories that only echo the question lift every option equally, so they cannot decide;
the margin test then makes the answerer abstain instead of guessing. Lexical overlap
between option and memory breaks near-ties (weight ``LEXICAL_TIEBREAK``, 0.01: it only
matters when the embeddings can hardly tell).

Open questions: the answer is the memory sentence most similar to the question (plus a
second one from another memory if it is about as good), or an abstention.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from taskmem_ros.config import AnswerConfig
from taskmem_ros.store import lexical
from taskmem_ros.store.embedding import Embedder
from taskmem_ros.types import Answer, MemoryRecord, ScoredMemory

INSUFFICIENT = "Insufficient information in memory."
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_MAX_SENTENCES = 2
LEXICAL_TIEBREAK = 0.01


class MemorySearch(Protocol):
    """What the answerer needs from a store (EpisodicStore satisfies it)."""

    @property
    def embedder(self) -> Embedder: ...

    def search(
        self,
        query: str,
        *,
        as_of_ns: int | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        stream: str | None = None,
        limit: int = 10,
        mode: str = "hybrid",
    ) -> list[ScoredMemory]: ...

    def vectors(self, ids: Sequence[int]) -> np.ndarray: ...


class RetrievalAnswerer:
    """Retrieve as-of memories (hybrid search), then pick/extract an answer or abstain."""

    def __init__(self, store: MemorySearch, cfg: AnswerConfig | None = None, embedder: Embedder | None = None) -> None:
        self.store = store
        self.cfg = cfg if cfg is not None else AnswerConfig()
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """Defaults to the store's embedder: stored vectors and query vectors must match."""
        return self._embedder if self._embedder is not None else self.store.embedder

    def retrieve(
        self, question: str, *, as_of_ns: int, choices: Sequence[str] | None = None, stream: str | None = None
    ) -> list[MemoryRecord]:
        """Memories for the question, plus for each "question + option" (an option's own
        words can find evidence the question alone does not), best first, deduplicated."""
        queries = [question] + [f"{question} {c}" for c in (choices or [])]
        seen: dict[int, tuple[float, MemoryRecord]] = {}
        for q in queries:
            for hit in self.store.search(q, as_of_ns=as_of_ns, stream=stream, limit=self.cfg.top_k):
                best = seen.get(hit.record.id)
                if best is None or hit.score > best[0]:
                    seen[hit.record.id] = (hit.score, hit.record)
        return [rec for _, rec in sorted(seen.values(), key=lambda t: (-t[0], t[1].id))]

    def answer(
        self,
        question: str,
        *,
        as_of_ns: int,
        choices: list[str] | None = None,
        stream: str | None = None,
    ) -> Answer:
        t0 = time.perf_counter()
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question={question!r} is invalid; expected non-empty text")
        if choices is not None and len([c for c in choices if str(c).strip()]) < 1:
            choices = None
        memories = self.retrieve(question, as_of_ns=int(as_of_ns), choices=choices, stream=stream)
        if not memories:
            out = Answer(text=INSUFFICIENT, abstained=True, choice_index=None)
        elif choices:
            out = self._multiple_choice(question, choices, memories)
        else:
            out = self._open(question, memories)
        out.latency_s = time.perf_counter() - t0
        return out

    # -- multiple choice ---------------------------------------------------------------------
    def support(self, question: str, choices: Sequence[str], memories: Sequence[MemoryRecord]) -> np.ndarray:
        """(n_choices, n_memories): mean of cos("question + option", memory) and
        cos(option, memory) - see the module docstring for why both."""
        mem = self.store.vectors([m.id for m in memories])
        missing = ~np.any(mem, axis=1)  # e.g. rows written without a vector: embed them now
        if missing.any():
            mem[missing] = self.embedder.embed([memories[int(i)].text for i in np.flatnonzero(missing)])
        n = len(choices)
        vecs = self.embedder.embed([f"{question} {c}" for c in choices] + [str(c) for c in choices])
        return np.asarray((vecs[:n] @ mem.T + vecs[n:] @ mem.T) / 2.0, dtype=np.float64)

    def _multiple_choice(self, question: str, choices: Sequence[str], memories: Sequence[MemoryRecord]) -> Answer:
        sims = self.support(question, choices, memories)
        best_mem = sims.argmax(axis=1)
        support = sims.max(axis=1)
        lex = np.array([lexical.overlap(c, memories[int(j)].text) for c, j in zip(choices, best_mem, strict=True)])
        score = support + LEXICAL_TIEBREAK * lex
        order = np.argsort(-score, kind="stable")
        best = int(order[0])
        runner_up = float(score[order[1]]) if len(order) > 1 else -1.0
        gap = float(score[best]) - runner_up
        conf = float(support[best])
        # evidence: memories that support the chosen option nearly as well as its best one
        row = sims[best]
        ev_order = np.argsort(-row, kind="stable")
        evidence = [memories[int(j)].id for j in ev_order[:3] if row[j] >= row[ev_order[0]] - 0.05]
        if conf < self.cfg.abstain_threshold or (len(choices) > 1 and gap < self.cfg.margin):
            return Answer(text=INSUFFICIENT, abstained=True, evidence_ids=evidence, confidence=conf, choice_index=None)
        return Answer(
            text=str(choices[best]), abstained=False, evidence_ids=evidence, confidence=conf, choice_index=best
        )

    # -- open questions ----------------------------------------------------------------------
    def _open(self, question: str, memories: Sequence[MemoryRecord]) -> Answer:
        sentences: list[tuple[int, str]] = []
        for m in memories:
            sentences += [(m.id, s.strip()) for s in _SENTENCE.split(m.text) if s.strip()]
        vecs = self.embedder.embed([s for _, s in sentences])
        q = self.embedder.embed([question])[0]
        sims = vecs @ q
        order = np.argsort(-sims, kind="stable")
        best = float(sims[order[0]])
        picked = [int(order[0])]
        for j in order[1:]:
            if len(picked) >= _MAX_SENTENCES or sims[j] < best - self.cfg.margin:
                break
            if sentences[int(j)][0] != sentences[picked[0]][0]:
                picked.append(int(j))
        evidence = list(dict.fromkeys(sentences[j][0] for j in picked))
        if best < self.cfg.abstain_threshold:
            return Answer(text=INSUFFICIENT, abstained=True, evidence_ids=evidence, confidence=best)
        text = " ".join(_as_sentence(sentences[j][1]) for j in picked)
        return Answer(text=text, abstained=False, evidence_ids=evidence, confidence=best)


def _as_sentence(s: str) -> str:
    return s if s.endswith((".", "!", "?")) else s + "."


def calibrate_threshold(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Abstention threshold that maximises accuracy-with-abstention on labelled examples.

    ``scores[i]`` is the answerer's confidence on example i and ``labels[i]`` whether its
    (forced) answer was correct. With threshold t the answerer answers when score >= t and
    abstains otherwise; an example counts as right when it answered correctly or abstained
    on an answer that would have been wrong. This is the TaskMem-style trade-off (a wrong
    answer is as costly as a needless abstention), so the best t separates likely-right
    from likely-wrong answers. Candidates are midpoints between sorted distinct scores
    (plus "answer all" / "abstain all"); among equally good ones the median is returned,
    which is the least sensitive to where exactly the boundary falls. Result in [-1, 1].
    """
    s = np.asarray(list(scores), dtype=np.float64)
    y = np.asarray(list(labels), dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D and equally long, got {s.shape} and {y.shape}")
    if len(s) == 0:
        raise ValueError("calibrate_threshold needs at least one labelled example")
    uniq = np.unique(s)
    candidates = np.concatenate(([uniq[0] - 1e-6], (uniq[:-1] + uniq[1:]) / 2, [uniq[-1] + 1e-6]))
    answered = s[None, :] >= candidates[:, None]
    right = (answered & y[None, :]) | (~answered & ~y[None, :])
    acc = right.mean(axis=1)
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    return float(np.clip(candidates[best[len(best) // 2]], -1.0, 1.0))

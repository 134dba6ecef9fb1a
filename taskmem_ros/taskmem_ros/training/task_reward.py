"""Phase Two's reward: how well one candidate memory of one clip serves the tasks logged about it.

A logged task is *relevant* to a clip when its evidence window overlaps the clip: the time span
of the entries the answerer cited (``TaskRecord.evidence_ids``, resolved with
``evidence_windows(store, tasks)``), else ``[asked_at - window_s, asked_at]``.

Each relevant task is answered from ONLY the candidate entries with the support rule of
``answer.retrieval.RetrievalAnswerer`` (an option's support is its best entry's mean of
cos("question + option", entry) and cos(option, entry)):

- the correct answer is known (multiple choice with a choice judged ``correct``): 1 when the
  correct option wins strictly and with support >= ``min_support``, else 0;
- otherwise: the best cosine of an entry to "question + logged answer" (the question alone
  when the answer was an abstention), clipped to [0, 1].

The reward is the mean over relevant tasks; a clip no task is about scores a neutral 0.0 (and
so never forms a training pair). Pure CPU, deterministic (the embedder is the only model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from taskmem_ros.store.embedding import Embedder
from taskmem_ros.store.tasks import TaskRecord
from taskmem_ros.types import NS_PER_S, Clip

CORRECT_OUTCOMES = frozenset({"correct", "right", "true", "yes", "success"})


class _EntryLookup(Protocol):
    def get_entries(self, ids: Sequence[int]) -> Sequence[Any]: ...


def known_choice(task: TaskRecord) -> int | None:
    """The index of the correct option when the log says so (a chosen option judged correct)."""
    if not task.choices or task.choice_index is None or task.abstained:
        return None
    if (task.outcome or "").strip().lower() not in CORRECT_OUTCOMES:
        return None
    idx = int(task.choice_index)
    return idx if 0 <= idx < len(task.choices) else None


def evidence_windows(store: _EntryLookup, tasks: Sequence[TaskRecord]) -> dict[int, tuple[int, int]]:
    """task id -> (start_ns, end_ns) spanned by the memory entries its answer cited."""
    ids = sorted({i for t in tasks for i in t.evidence_ids})
    if not ids:
        return {}
    spans = {int(r.id): (int(r.start_ns), int(r.end_ns)) for r in store.get_entries(ids)}
    out: dict[int, tuple[int, int]] = {}
    for t in tasks:
        found = [spans[i] for i in t.evidence_ids if i in spans]
        if found:
            out[t.id] = (min(a for a, _ in found), max(b for _, b in found))
    return out


@dataclass(frozen=True)
class _Relevant:
    task: TaskRecord
    start_ns: int
    end_ns: int
    correct: int | None


class TaskReward:
    """``score(clip, entries)`` in [0, 1]: the share of relevant logged tasks the entries answer."""

    def __init__(
        self,
        tasks: Sequence[TaskRecord],
        *,
        embedder: Embedder,
        window_s: float = 60.0,
        evidence: Mapping[int, tuple[int, int]] | None = None,
        min_support: float = 0.1,
        clips: Sequence[Clip] = (),
    ) -> None:
        """``evidence``: from ``evidence_windows``; ``clips``: what ``clip_index`` in
        ``task_reward_fn`` refers to."""
        if window_s <= 0:
            raise ValueError(f"window_s={window_s!r} is invalid; expected > 0")
        self.embedder = embedder
        self.window_ns = int(window_s * NS_PER_S)
        self.min_support = float(min_support)
        self.clips = list(clips)
        evidence = evidence or {}
        self.tasks: list[_Relevant] = []
        for t in tasks:
            start, end = evidence.get(t.id, (t.asked_at_ns - self.window_ns, t.asked_at_ns))
            self.tasks.append(_Relevant(t, int(start), int(end), known_choice(t)))
        self._cache: dict[str, np.ndarray] = {}

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for t, v in zip(missing, self.embedder.embed(missing), strict=True):
                self._cache[t] = np.asarray(v, dtype=np.float64)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 1))

    def relevant(self, clip: Clip) -> list[TaskRecord]:
        """Tasks whose evidence window overlaps the clip."""
        return [r.task for r in self._relevant(clip)]

    def _relevant(self, clip: Clip) -> list[_Relevant]:
        return [r for r in self.tasks if r.start_ns < clip.end_ns and r.end_ns > clip.start_ns]

    def support(self, question: str, choices: Sequence[str], entries: Sequence[str]) -> np.ndarray:
        """(n_choices, n_entries), as ``RetrievalAnswerer.support``."""
        mem = self._embed(list(entries))
        n = len(choices)
        vecs = self._embed([f"{question} {c}" for c in choices] + [str(c) for c in choices])
        return np.asarray((vecs[:n] @ mem.T + vecs[n:] @ mem.T) / 2.0, dtype=np.float64)

    def choose(self, question: str, choices: Sequence[str], entries: Sequence[str]) -> int | None:
        """The option the entries support (strict winner above ``min_support``), or None."""
        if not entries or not choices:
            return None
        best = self.support(question, choices, entries).max(axis=1)
        order = np.argsort(-best, kind="stable")
        top = float(best[order[0]])
        runner_up = float(best[order[1]]) if len(order) > 1 else -np.inf
        if top < self.min_support or top - runner_up <= 1e-9:
            return None
        return int(order[0])

    def task_score(self, task: TaskRecord, entries: Sequence[str], correct: int | None = None) -> float:
        """How well ``entries`` answer one task (see the module docstring)."""
        entries = [e for e in entries if e.strip()]
        if not entries:
            return 0.0
        if correct is None:
            correct = known_choice(task)
        if correct is not None and task.choices:
            return 1.0 if self.choose(task.question, task.choices, entries) == correct else 0.0
        target = task.question if task.abstained or not task.answer else f"{task.question} {task.answer}"
        sims = self._embed(list(entries)) @ self._embed([target])[0]
        return float(np.clip(sims.max(), 0.0, 1.0))

    def score(self, clip: Clip, candidate_entries: Sequence[str]) -> float:
        """Mean task score over the tasks relevant to ``clip``; 0.0 when none is."""
        rel = self._relevant(clip)
        if not rel:
            return 0.0
        return float(np.mean([self.task_score(r.task, candidate_entries, r.correct) for r in rel]))

    def accuracy(self, tasks: Sequence[TaskRecord], entries_by_clip: Sequence[tuple[Clip, Sequence[str]]]) -> float:
        """Share of ``tasks`` with a known answer answered correctly from the entries of the clips
        that ended by the time each was asked (as-of memory); NaN when none has a known answer."""
        known = [(t, c) for t in tasks if (c := known_choice(t)) is not None]
        if not known:
            return float("nan")
        hits = 0
        for t, c in known:
            memory = [e for clip, es in entries_by_clip if clip.end_ns <= t.asked_at_ns for e in es]
            hits += int(self.choose(t.question, t.choices or [], memory) == c)
        return hits / len(known)


def task_reward_fn(
    task_reward: TaskReward, *, max_entries: int = 8, max_chars: int = 240
) -> Callable[..., list[float]]:
    """A TRL-style reward function ``(completions, clip_index=..., **kwargs) -> list[float]``:
    each completion (raw model text, or a chat message list) is parsed into entries and scored
    for ``task_reward.clips[clip_index[i]]``."""
    from taskmem_ros.policy.parsing import parse_entries

    def reward(completions: Sequence[Any], clip_index: Sequence[int] | None = None, **kwargs: Any) -> list[float]:
        if clip_index is None:
            raise ValueError("task reward needs clip_index (a dataset column) for every completion")
        out = []
        for comp, ci in zip(completions, clip_index, strict=True):
            text = comp if isinstance(comp, str) else "".join(str(m.get("content", "")) for m in comp)
            entries = [e.text for e in parse_entries(text, max_entries=max_entries, max_chars=max_chars).entries]
            out.append(task_reward.score(task_reward.clips[int(ci)], entries))
        return out

    reward.__name__ = "task_reward"
    return reward

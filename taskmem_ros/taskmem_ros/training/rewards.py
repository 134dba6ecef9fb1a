"""Phase One rewards: memory quality, as plain TRL-style reward callables.

Every reward is ``fn(completions, **kwargs) -> list[float]`` (one float per completion), the
shape ``trl.GRPOTrainer(reward_funcs=...)`` calls. ``completions`` are plain strings or TRL's
conversational form (``[{"role": "assistant", "content": "..."}]``); extra dataset columns
arrive as keyword lists aligned with the completions:

- ``reference``: the clip's transcript / dense caption (``str``),
- ``facts``: reference facts the memories should cover (``list[str]``; default: the reference's
  sentences),
- ``context``: recent memories already written (``list[str]``).

Model output is untrusted: garbage scores low and never raises. Terms (weights in
``RewardConfig``):

========================  ==========  =====================================================
``format_reward``         [0, 1]      1 schema-valid JSON (an empty ``entries`` list is
                                      valid), 0.5 only after repair, 0 unparseable
``length_penalty``        [-2, 0]     entries over ``target_chars`` and lists longer than
                                      ``max_entries``
``redundancy_penalty``    [-1, 0]     share of entries repeating the context or each other
``fidelity_reward``       [0, 1]      share of entries the reference supports
``coverage_reward``       [0, 1]      share of reference facts some entry covers
========================  ==========  =====================================================

"Supported" / "covered": cosine similarity (the embedder's unit rows) >= ``support_threshold``
against some reference sentence / entry, or every content word of the entry occurs in the
reference (exact lexical support, which a hashing embedder alone under-rates).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from taskmem_ros.config import RewardConfig
from taskmem_ros.llm.json_repair import extract_json, strip_thinking
from taskmem_ros.policy.parsing import BULLET_LINE, bullet_items, entry_items, normalise, read_entry
from taskmem_ros.store.embedding import Embedder
from taskmem_ros.store.lexical import STOPWORDS

RewardFn = Callable[..., list[float]]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_REDUNDANT_JACCARD = 0.8
# Function words ignored when checking that an entry's words all occur in the reference: the
# store's full-text stop-words plus a few a paraphrase adds without adding a fact.
_STOPWORDS = STOPWORDS | {"also", "may", "might", "must", "near", "one", "onto", "us"}
_KINDS = ("episodic", "semantic")


# -- reading completions ----------------------------------------------------------------------
def completion_text(completion: Any) -> str:
    """The generated text of a completion, whether a string or TRL's list of message dicts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        msgs = [m for m in completion if isinstance(m, dict)]
        picked = [m for m in msgs if m.get("role", "assistant") == "assistant"] or msgs
        return "\n".join(_content_text(m.get("content")) for m in picked)
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def entry_texts(completion: Any) -> list[str] | None:
    """Every entry text the output holds, in order, duplicates kept (rewards judge them);
    None when nothing could be read."""
    read = _read(completion)
    return None if read is None else read[1]


def _read(completion: Any) -> tuple[int, list[str]] | None:
    """(number of items in the list, valid entry texts), leniently; None: unreadable."""
    try:
        text, _ = strip_thinking(completion_text(completion))
        lines = bullet_items(text)  # a text LLM's one memory per line
        if lines is not None:
            return len(lines[0]), list(lines[0])
        value, _ = extract_json(text)
        items = entry_items(value)
    except (ValueError, RecursionError, TypeError):
        return None
    if items is None:
        return None
    counts: Counter[str] = Counter()
    out = []
    for item in items:
        entry = read_entry(item, counts)
        if entry is not None:
            out.append(entry.text)
    return len(items), out


def _strictly_valid(text: str) -> bool:
    """JSON only (think blocks aside) and exactly ``ENTRY_SCHEMA``; or a bullet list whose every
    line is a bullet and no two say the same (a model looping on one line is not valid)."""
    body, _ = strip_thinking(text)
    lines = bullet_items(body)
    if lines is not None:
        rows = [r for r in body.strip().splitlines() if r.strip()]
        keys = [normalise(t) for t in lines[0]]
        return all(BULLET_LINE.match(r) for r in rows) and all(keys) and len(set(keys)) == len(keys)
    try:
        value = json.loads(body.strip())
    except (ValueError, RecursionError):
        return False
    if not isinstance(value, dict) or not isinstance(value.get("entries"), list):
        return False
    for item in value["entries"]:
        if not isinstance(item, dict) or item.get("kind") not in _KINDS:
            return False
        if not isinstance(item.get("text"), str) or not item["text"].strip():
            return False
        for key in ("start_s", "end_s"):
            v = item.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                return False
    return True


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any]:
    """A dataset column aligned with the completions (missing or short: None)."""
    col = kwargs.get(name)
    if not isinstance(col, (list, tuple)):
        return [None] * n
    return [col[i] if i < len(col) else None for i in range(n)]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if isinstance(v, str) and v.strip()]
    return []


def split_sentences(text: Any) -> list[str]:
    """Reference text -> sentences / transcript lines (empty pieces dropped)."""
    if not isinstance(text, str):
        return []
    return [s.strip() for s in _SENTENCE.split(text) if len(normalise(s)) > 0]


def _content_words(text: str) -> set[str]:
    return {w for w in normalise(text).split() if w not in _STOPWORDS}


def _near_duplicate(a: str, b: str) -> bool:
    if a == b:
        return True
    wa, wb = set(a.split()), set(b.split())
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= _REDUNDANT_JACCARD


def _named(fn: RewardFn, name: str) -> RewardFn:
    fn.__name__ = name
    fn.__qualname__ = name
    return fn


# -- rewards ----------------------------------------------------------------------------------
def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1.0 schema-valid (>= 1 entry, or an explicit empty list), 0.5 readable only after repair
    (fences, prose, trailing commas, truncation, other keys), 0.0 unreadable."""
    out = []
    for c in completions:
        text = completion_text(c)
        if _strictly_valid(text):
            out.append(1.0)
            continue
        read = _read(c)
        # repaired: 0.5 when it holds an entry or is an explicit empty list; items none valid: 0
        out.append(0.5 if read is not None and (read[1] or read[0] == 0) else 0.0)
    return out


def make_length_penalty(target_chars: int, max_entries: int) -> RewardFn:
    def length_penalty(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        out = []
        for c in completions:
            entries = entry_texts(c) or []
            if not entries:
                out.append(0.0)
                continue
            excess = float(np.mean([max(0, len(t) - target_chars) / target_chars for t in entries]))
            extra = max(0, len(entries) - max_entries) / max_entries
            out.append(-min(2.0, excess + extra))
        return out

    return _named(length_penalty, "length_penalty")


def redundancy_penalty(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Minus the share of entries that repeat the context (kwarg ``context``) or an earlier entry
    (same normalised text, or word Jaccard >= 0.8)."""
    contexts = _column(kwargs, "context", len(completions))
    out = []
    for c, ctx in zip(completions, contexts, strict=True):
        entries = [normalise(t) for t in entry_texts(c) or []]
        if not entries:
            out.append(0.0)
            continue
        seen = [normalise(t) for t in _strings(ctx)]
        repeated = 0
        for key in entries:
            if any(_near_duplicate(key, s) for s in seen):
                repeated += 1
            seen.append(key)
        out.append(-repeated / len(entries))
    return out


def _supported(embedder: Embedder, claims: list[str], evidence: list[str], threshold: float) -> list[bool]:
    """For each claim: max cosine to any evidence text >= threshold, or all its content words
    occur in the evidence."""
    if not claims:
        return []
    if not evidence:
        return [False] * len(claims)
    words = set().union(*(_content_words(e) for e in evidence))
    lexical = [bool(cw) and cw <= words for cw in (_content_words(c) for c in claims)]
    vecs = np.asarray(embedder.embed(list(claims) + list(evidence)), dtype=np.float32)
    sims = vecs[: len(claims)] @ vecs[len(claims) :].T
    best = np.nan_to_num(sims.max(axis=1), nan=0.0)
    return [bool(lex or b >= threshold) for lex, b in zip(lexical, best, strict=True)]


def make_fidelity_reward(embedder: Embedder, threshold: float = 0.5) -> RewardFn:
    def fidelity_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        """Share of entries the reference (kwarg ``reference``) supports; no entries: 0."""
        refs = _column(kwargs, "reference", len(completions))
        out = []
        for c, ref in zip(completions, refs, strict=True):
            entries = entry_texts(c) or []
            if not entries:
                out.append(0.0)
                continue
            ok = _supported(embedder, entries, split_sentences(ref), threshold)
            out.append(sum(ok) / len(entries))
        return out

    return _named(fidelity_reward, "fidelity_reward")


def make_coverage_reward(embedder: Embedder, threshold: float = 0.5) -> RewardFn:
    def coverage_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        """Share of facts (kwarg ``facts``, default the reference's sentences) some entry covers."""
        n = len(completions)
        refs, facts_col = _column(kwargs, "reference", n), _column(kwargs, "facts", n)
        out = []
        for c, ref, facts in zip(completions, refs, facts_col, strict=True):
            wanted = _strings(facts) or split_sentences(ref)
            entries = entry_texts(c) or []
            if not wanted or not entries:
                out.append(0.0)
                continue
            out.append(sum(_supported(embedder, wanted, entries, threshold)) / len(wanted))
        return out

    return _named(coverage_reward, "coverage_reward")


JUDGE_FIDELITY_PROMPT = """Below are numbered statements someone wrote about this clip. Looking at the frames and \
the transcript, which statements are supported by what is seen or heard? Reply with JSON only: \
{"supported": [numbers of the supported statements]}"""


def read_supported(text: str, n: int) -> set[int] | None:
    """The statement numbers (1-based, within 1..n) a judge called supported; None if unreadable."""
    from taskmem_ros.llm.json_repair import extract_json, strip_thinking

    body, _ = strip_thinking(text or "")
    try:
        value, _ = extract_json(body)
    except ValueError:
        return None
    items = value.get("supported") if isinstance(value, dict) else value
    if not isinstance(items, list):
        return None
    return {int(i) for i in items if isinstance(i, (int, float)) and not isinstance(i, bool) and 1 <= i <= n}


def judge_fidelity_messages(clip: Any, entries: Sequence[str]) -> list[dict[str, Any]]:
    """The judge's chat: the clip's keyframes as video, its transcript, the numbered entries."""
    from taskmem_ros.config import PolicyConfig
    from taskmem_ros.llm.base import text_part
    from taskmem_ros.policy.prompt import clip_messages
    from taskmem_ros.types import PolicyContext

    video = clip_messages(clip, PolicyContext(), PolicyConfig())[1]["content"][:-1]  # keyframes, no instructions
    transcript = " ".join(s.text for s in clip.transcript) or "(no speech)"
    listing = "\n".join(f"{k}. {e}" for k, e in enumerate(entries, 1))
    return [
        {
            "role": "user",
            "content": [*video, text_part(f"Transcript: {transcript}\n{JUDGE_FIDELITY_PROMPT}\n{listing}")],
        }
    ]


def make_judge_fidelity_reward(engine: Any, clips: Sequence[Any], *, max_new_tokens: int = 64) -> RewardFn:
    """Fidelity when no reference text exists: a judge model (any ``ChatEngine``, e.g. the base
    Qwen3-VL or an endpoint) looks at the clip's keyframes + transcript and names the entries
    it sees supported. Needs the dataset column ``clip_index`` (``Clip.index`` of ``clips``).
    Unreadable judge output or a failed request scores 0 for that completion (counted in
    ``reward.stats``); all completions of a call go to the judge as one batch."""
    from collections import Counter

    from taskmem_ros.llm.base import ChatRequest

    by_index = {int(c.index): c for c in clips}
    stats: Counter[str] = Counter()

    def judge_fidelity_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        indices = _column(kwargs, "clip_index", len(completions))
        out: list[float] = [0.0] * len(completions)
        asks: list[tuple[int, int, ChatRequest]] = []
        for i, (c, ci) in enumerate(zip(completions, indices, strict=True)):
            entries = entry_texts(c) or []
            clip = by_index.get(int(ci)) if ci is not None else None
            if not entries or clip is None:
                stats["judge_fidelity_skipped"] += 1
                continue
            msgs = judge_fidelity_messages(clip, entries)
            asks.append((i, len(entries), ChatRequest(msgs, max_new_tokens=max_new_tokens, use_adapter=False)))
        if not asks:
            return out
        gens = engine.generate([r for _, _, r in asks])
        for (i, n, _), gen in zip(asks, gens, strict=True):
            ok = None if gen.finish_reason == "error" else read_supported(gen.text, n)
            if ok is None:
                stats["judge_fidelity_unreadable"] += 1
                continue
            out[i] = len(ok) / n
        return out

    fn = _named(judge_fidelity_reward, "judge_fidelity_reward")
    fn.stats = stats  # type: ignore[attr-defined]
    return fn


# -- combining --------------------------------------------------------------------------------
def combined_reward(cfg: RewardConfig, embedder: Embedder) -> list[tuple[RewardFn, float]]:
    """(reward function, weight) for every term with a positive weight, in a fixed order."""
    terms: list[tuple[RewardFn, float]] = [
        (format_reward, cfg.format_weight),
        (make_length_penalty(cfg.target_chars, cfg.max_entries), cfg.length_weight),
        (redundancy_penalty, cfg.redundancy_weight),
        (make_fidelity_reward(embedder, cfg.support_threshold), cfg.fidelity_weight),
        (make_coverage_reward(embedder, cfg.support_threshold), cfg.coverage_weight),
    ]
    return [(fn, float(w)) for fn, w in terms if w > 0]


def reward_funcs(cfg: RewardConfig, embedder: Embedder) -> tuple[list[RewardFn], list[float]]:
    """``(funcs, weights)`` for ``GRPOTrainer(reward_funcs=funcs)`` + ``GRPOConfig(reward_weights=weights)``."""
    pairs = combined_reward(cfg, embedder)
    return [fn for fn, _ in pairs], [w for _, w in pairs]


def weighted_sum(terms: Sequence[tuple[RewardFn, float]], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """The total reward per completion (what GRPO sums with ``reward_weights``)."""
    total = np.zeros(len(completions), dtype=np.float64)
    for fn, weight in terms:
        total += weight * np.asarray(fn(completions, **kwargs), dtype=np.float64)
    return [float(x) for x in total]

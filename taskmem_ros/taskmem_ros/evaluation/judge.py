"""Grading open-ended answers (EgoTempo): an LLM judge as the benchmark prescribes, ANLS without one.

EgoTempo answers are free text ("The oil remover spray."), so exact match under-counts
paraphrases; the benchmark grades with an LLM rubric (yes/no + a 0-5 score). ``LLMJudge``
runs that rubric on any ``ChatEngine`` (the robot's own Qwen3-VL, or a bigger model behind an
OpenAI-compatible server). ``ANLSJudge`` is the model-free stand-in (CPU CI, or when the judge
model fails): Average Normalized Levenshtein Similarity, the standard open-VQA string metric.

Judge output is untrusted model output, read like the policy's (think blocks, prose, Python
dicts, truncated JSON); whatever cannot be read is counted in ``LLMJudge.stats`` and graded
as incorrect, so a broken judge shows up as a number instead of as inflated accuracy.
"""

from __future__ import annotations

import ast
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from taskmem_ros.llm.base import ChatEngine, ChatRequest, Generation, Message
from taskmem_ros.llm.json_repair import extract_json, strip_thinking

log = logging.getLogger(__name__)

MAX_CHARS = 1000  # ANLS compares at most this much of each string (Levenshtein is O(n*m))
MAX_SCORE = 5.0
UNREADABLE = "unreadable judge output"

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_YES_NO = re.compile(r"\b(yes|no)\b", re.I)
_PRED_KEY = re.compile(r"\bpred(?:iction)?\b['\"]?\s*[:=]\s*['\"]?\s*(yes|no)\b", re.I)
_SCORE_KEY = re.compile(r"\bscore\b\D{0,12}?(\d+(?:\.\d+)?)", re.I)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_DICT = re.compile(r"\{[^{}]*\}", re.S)

JUDGE_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for "
    "question-answer pairs. Your task is to compare the predicted answer with the correct answer and "
    "determine if they match meaningfully.\n"
    "INSTRUCTIONS:\n"
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the correct answer."
)
JUDGE_USER = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {question}\n"
    "Correct Answer: {reference}\n"
    "Predicted Answer: {prediction}\n\n"
    "Reply with your evaluation only: a yes/no on whether the prediction matches, and a score, an integer "
    "from 0 to 5 where 5 is the highest meaningful match. Reply with a JSON object and nothing else, "
    'for example: {{"pred": "yes", "score": 4}}'
)
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pred": {"type": "string", "enum": ["yes", "no"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 5},
    },
    "required": ["pred", "score"],
}


@dataclass(frozen=True)
class Verdict:
    correct: bool
    score: float  # 0-5
    anls: float  # 0-1
    rationale: str = ""


# -- ANLS ------------------------------------------------------------------------------------------
def normalize_answer(s: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD-style),
    so "A spoon." and "spoon" compare equal."""
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in (s or "").lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance, two rolling rows: O(len(a) * len(b)) time, O(min) memory."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def anls(prediction: str, references: str | Sequence[str], tau: float = 0.5) -> float:
    """Normalized Levenshtein similarity to the closest reference, 0 when the normalized
    distance is not below ``tau`` (Biten et al., 2019). Strings are ``normalize_answer``-ed and
    capped at ``MAX_CHARS``; two empty strings match (1.0)."""
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("anls needs at least one reference")
    pred = normalize_answer(prediction)[:MAX_CHARS]
    best = 0.0
    for ref in refs:
        r = normalize_answer(ref)[:MAX_CHARS]
        longest = max(len(pred), len(r))
        sim = 1.0 if longest == 0 else 1.0 - levenshtein(pred, r) / longest
        best = max(best, sim if 1.0 - sim < tau else 0.0)
    return best


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 on normalised answers: credits a right answer inside a longer
    sentence ("Text visible: 'BAY 3'." vs "Bay 3.") that whole-string ANLS rejects."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum(min(pred.count(t), ref.count(t)) for t in set(ref))
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


class ANLSJudge:
    """Model-free: correct when ANLS or token F1 reaches ``threshold``; score = 5 x the better
    of the two (the LLM judge's 0-5 scale). ANLS is reported as such."""

    name = "anls"

    def __init__(self, threshold: float = 0.5, tau: float = 0.5) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold={threshold} must be in (0, 1]")
        self.threshold = threshold
        self.tau = tau

    def judge(self, question: str, reference: str, prediction: str) -> Verdict:
        a = anls(prediction, reference, self.tau)
        f1 = token_f1(prediction, reference)
        best = max(a, f1)
        ok = best >= self.threshold
        why = f"anls {a:.3f}, token F1 {f1:.3f} {'>=' if ok else '<'} {self.threshold:g}"
        return Verdict(ok, best * MAX_SCORE, a, why)


# -- reading judge output --------------------------------------------------------------------------
def _pred(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().strip(".!").lower()
        if v in ("yes", "y", "true", "correct", "match"):
            return True
        if v in ("no", "n", "false", "incorrect", "no match"):
            return False
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        m = _NUMBER.search(value)
        value = float(m.group()) if m else None
    if isinstance(value, (int, float)) and value == value and abs(value) != float("inf"):
        return float(value)
    return None


def _as_dict(text: str, counts: Counter[str]) -> dict[str, Any] | None:
    """The first JSON object (repaired if needed), else a Python dict literal (the original
    Video-ChatGPT-style rubric asks for ``{'pred': 'yes', 'score': 4}``)."""
    try:
        value, repaired = extract_json(text)
        if isinstance(value, dict):
            if repaired:
                counts["judge_json_repaired"] += 1
            return value
    except ValueError:
        pass
    for m in _DICT.finditer(text):
        try:
            value = ast.literal_eval(m.group())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            counts["judge_python_dict"] += 1
            return value
    return None


def _text_pred(body: str) -> bool | None:
    if m := _PRED_KEY.search(body):
        return m.group(1).lower() == "yes"
    words = {w.lower() for w in _YES_NO.findall(body)}
    return (words == {"yes"}) if len(words) == 1 else None  # none, or both: ambiguous


def _text_score(body: str) -> float | None:
    if m := _SCORE_KEY.search(body):
        return float(m.group(1))
    numbers = _NUMBER.findall(body)
    return float(numbers[0]) if len(numbers) == 1 else None


def read_verdict(text: str, counts: Counter[str] | None = None) -> Verdict | None:
    """Judge output -> Verdict (``anls`` left 0; the judge fills it in), or None if unreadable.

    Order: a JSON object / Python dict with ``pred`` and ``score``; for a missing or unusable
    field, ``pred: yes`` / ``score 4`` patterns in the text, then a lone yes/no word and a lone
    number. yes and no both present (without a ``pred`` key) is ambiguous, hence unreadable.
    A readable yes/no with no score takes 5 or 0 (counted as ``judge_score_imputed``).
    """
    c: Counter[str] = counts if counts is not None else Counter()
    body, thought = strip_thinking(text or "")
    if thought:
        c["judge_think_stripped"] += 1
    value = _as_dict(body, c) or {}
    lowered = {str(k).strip().lower(): v for k, v in value.items()}
    pred = next(
        (p for k in ("pred", "prediction", "match", "correct") if (p := _pred(lowered.get(k))) is not None), None
    )
    score = _number(lowered.get("score"))
    how = "json" if pred is not None else "text"
    if pred is None:
        pred = _text_pred(body)
    if pred is None:
        return None
    if score is None:
        score = _text_score(body)
    if score is None:
        c["judge_score_imputed"] += 1
        score, how = (MAX_SCORE if pred else 0.0), how + ", score imputed"
    elif not 0.0 <= score <= MAX_SCORE:
        c["judge_score_clamped"] += 1
        score = min(max(score, 0.0), MAX_SCORE)
    c[f"judge_read_{how.split(',')[0]}"] += 1
    return Verdict(pred, score, 0.0, f"judge ({how}): pred={'yes' if pred else 'no'} score={score:g}")


def judge_messages(question: str, reference: str, prediction: str) -> list[Message]:
    """The rubric prompt for one (question, reference, prediction) triple."""
    user = JUDGE_USER.format(question=question, reference=reference, prediction=prediction)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


# -- the LLM judge ---------------------------------------------------------------------------------
class LLMJudge:
    """The EgoTempo-style rubric on a ChatEngine; one ``generate`` call per ``judge_many``.

    Requests use the base model (``use_adapter=False``: a Phase Two adapter must not grade its
    own answers), greedy decoding, no thinking, and the verdict JSON schema where the server
    supports structured output. A failed generation is graded by ANLS instead (counted).
    """

    name = "llm"

    def __init__(self, engine: ChatEngine, *, max_new_tokens: int = 64) -> None:
        self.engine = engine
        self.max_new_tokens = max_new_tokens
        self.fallback = ANLSJudge()
        self.stats: Counter[str] = Counter()

    def request(self, question: str, reference: str, prediction: str) -> ChatRequest:
        return ChatRequest(
            judge_messages(question, reference, prediction),
            max_new_tokens=self.max_new_tokens,
            temperature=0.0,
            json_schema=VERDICT_SCHEMA,
            use_adapter=False,
            enable_thinking=False,
        )

    def judge(self, question: str, reference: str, prediction: str) -> Verdict:
        return self.judge_many([(question, reference, prediction)])[0]

    def judge_many(self, items: Sequence[tuple[str, str, str]]) -> list[Verdict]:
        """Verdicts for (question, reference, prediction) triples, in order."""
        if not items:
            return []
        self.stats["judge_requests"] += len(items)
        try:
            gens = list(self.engine.generate([self.request(*it) for it in items]))
        except Exception as exc:  # the contract says generate never raises; a broken engine still must not sink a run
            log.warning("judge engine failed on %d item(s): %s; grading them by ANLS", len(items), exc)
            gens = []
        missing = Generation("", finish_reason="error", error="no generation returned")
        gens += [missing] * (len(items) - len(gens))
        return [self._verdict(item, gen) for item, gen in zip(items, gens, strict=False)]

    def _verdict(self, item: tuple[str, str, str], gen: Generation) -> Verdict:
        question, reference, prediction = item
        a = anls(prediction, reference)
        if gen.finish_reason == "error":
            self.stats["judge_generation_errors"] += 1
            fb = self.fallback.judge(question, reference, prediction)
            return replace(fb, rationale=f"judge failed ({gen.error or 'error'}); {fb.rationale}")
        verdict = read_verdict(gen.text, self.stats)
        if verdict is None:
            self.stats["judge_unreadable"] += 1
            return Verdict(False, 0.0, a, UNREADABLE)
        self.stats["judge_readable"] += 1
        return replace(verdict, anls=a)

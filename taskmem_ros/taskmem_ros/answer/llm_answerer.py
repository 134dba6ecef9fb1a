"""Answer a task with an LLM reading retrieved as-of memories (text only, never video).

Multiple choice gets one extra option - "not in memory" (E for four options) - which is
the abstention; open questions abstain with "Insufficient information". The model is asked
for ``{"answer": ..., "evidence": [memory numbers]}``; answers it gives as plain text are
still read, and evidence falls back to the retrieved memories so every answer can be
audited. The answerer runs the base model (``use_adapter=False``): Phase Two adapters
change what is memorized, not how questions are answered.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from taskmem_ros.answer.retrieval import INSUFFICIENT, MemorySearch, RetrievalAnswerer
from taskmem_ros.config import AnswerConfig
from taskmem_ros.llm.base import ChatEngine, ChatRequest
from taskmem_ros.llm.json_repair import extract_json, strip_thinking
from taskmem_ros.types import NS_PER_S, Answer, MemoryRecord

log = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Za-z])[.):]\s+")
_LETTER = re.compile(r"\b([A-Z])\b")
_ABSTAIN = re.compile(r"insufficient information|not in (the )?memory|cannot be determined|unknown", re.I)

SYSTEM_PROMPT = """You answer questions about a robot's past using ONLY its memories, listed below \
with when they happened relative to the question. Never guess beyond them.
Reply with JSON only: {"answer": ..., "evidence": [numbers of the memories you used]}."""


def ago(delta_ns: int) -> str:
    s = max(0, delta_ns) // NS_PER_S
    if s < 60:
        return f"{s} s before the question"
    if s < 3600:
        return f"{s // 60} min {s % 60} s before the question"
    return f"{s // 3600} h {s % 3600 // 60} min before the question"


def memory_lines(memories: Sequence[MemoryRecord], as_of_ns: int, budget_chars: int) -> list[MemoryRecord]:
    """Best-ranked memories that fit the budget, then put in time order for reading."""
    kept: list[MemoryRecord] = []
    used = 0
    for m in memories:
        if used + len(m.text) > budget_chars and kept:
            break
        kept.append(m)
        used += len(m.text)
    return sorted(kept, key=lambda m: (m.start_ns, m.id))


def strip_option_letter(option: str) -> str:
    """VideoMME-style options arrive as "A. text"; we letter them ourselves."""
    return _OPTION_PREFIX.sub("", str(option)).strip()


class LLMAnswerer:
    def __init__(self, store: MemorySearch, cfg: AnswerConfig, engine: ChatEngine, *, release: bool = True) -> None:
        self.store = store
        self.cfg = cfg
        self.engine = engine
        self.release = release
        self.retriever = RetrievalAnswerer(store, cfg)
        self.stats: Counter[str] = Counter()

    def request(
        self, question: str, memories: Sequence[MemoryRecord], as_of_ns: int, choices: Sequence[str] | None
    ) -> ChatRequest:
        lines = ["Memories:"]
        lines += [f"[{i}] ({ago(as_of_ns - m.end_ns)}) {m.text}" for i, m in enumerate(memories, 1)]
        lines.append(f"\nQuestion: {question}")
        if choices:
            abstain = LETTERS[len(choices)]
            lines.append("Options:")
            lines += [f"{LETTERS[i]}. {strip_option_letter(c)}" for i, c in enumerate(choices)]
            lines.append(f"{abstain}. Not in memory")
            lines.append(
                f'Answer with the letter of the correct option, or "{abstain}" if the memories do not say. '
                f'Example: {{"answer": "B", "evidence": [2]}}'
            )
        else:
            lines.append(
                "Answer in one short sentence. If the memories do not contain the answer, answer exactly "
                '"Insufficient information". Example: {"answer": "On the kitchen table.", "evidence": [3]}'
            )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "\n".join(lines)},
        ]
        return ChatRequest(messages, max_new_tokens=self.cfg.max_new_tokens, temperature=0.0, use_adapter=False)

    def answer(
        self, question: str, *, as_of_ns: int, choices: list[str] | None = None, stream: str | None = None
    ) -> Answer:
        t0 = time.perf_counter()
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question={question!r} is invalid; expected non-empty text")
        if choices is not None and not [c for c in choices if str(c).strip()]:
            choices = None
        if choices is not None and len(choices) >= len(LETTERS):
            raise ValueError(f"{len(choices)} choices; at most {len(LETTERS) - 1} are supported")
        found = self.retriever.retrieve(question, as_of_ns=int(as_of_ns), choices=choices, stream=stream)
        memories = memory_lines(found, int(as_of_ns), self.cfg.memory_chars)
        if not memories:
            out = Answer(text=INSUFFICIENT, abstained=True)
        else:
            gen = self.engine.generate([self.request(question, memories, int(as_of_ns), choices)])[0]
            if gen.finish_reason == "error":
                self.stats["answer_generation_errors"] += 1
                log.warning("answerer generation failed: %s", gen.error)
                out = Answer(text=INSUFFICIENT, abstained=True, evidence_ids=[m.id for m in found[:3]])
            else:
                out = self.read(gen.text, memories, found, choices)
        out.latency_s = time.perf_counter() - t0
        return out

    def read(
        self,
        output: str,
        memories: Sequence[MemoryRecord],
        ranked: Sequence[MemoryRecord],
        choices: Sequence[str] | None,
    ) -> Answer:
        """Model text -> Answer; whatever the model wrote, the result is well-formed."""
        text, _ = strip_thinking(output)
        raw_answer: Any = None
        cited: list[int] = []
        confidence = 1.0
        try:
            value, repaired = extract_json(text)
            if isinstance(value, dict):
                raw_answer = value.get("answer")
                ev = value.get("evidence", [])
                cited = [int(i) for i in ev if isinstance(i, (int, float)) and not isinstance(i, bool)]
            confidence = 0.8 if repaired else 1.0
        except ValueError:
            pass
        if raw_answer is None:  # plain text answer
            self.stats["answer_unstructured"] += 1
            raw_answer, confidence = text.strip(), 0.5
        evidence = [memories[i - 1].id for i in cited if 1 <= i <= len(memories)]
        if not evidence:
            evidence = [m.id for m in ranked[:3]]
        answer = " ".join(str(raw_answer).split())
        if choices:
            return self._choice(answer, choices, evidence, confidence)
        if not answer or _ABSTAIN.search(answer):
            return Answer(text=INSUFFICIENT, abstained=True, evidence_ids=evidence, confidence=0.0)
        return Answer(text=answer, abstained=False, evidence_ids=evidence, confidence=confidence)

    def _choice(self, answer: str, choices: Sequence[str], evidence: list[int], confidence: float) -> Answer:
        abstain = LETTERS[len(choices)]
        letter = answer.strip().upper()[:1] if len(answer.strip()) == 1 else None
        if letter is None:
            m = _LETTER.search(answer.upper())
            letter = m.group(1) if m else None
            if letter is None:  # the model wrote an option's text instead of its letter
                norm = answer.casefold()
                hits = [i for i, c in enumerate(choices) if strip_option_letter(c).casefold() in norm]
                letter = LETTERS[hits[0]] if len(hits) == 1 else None
        if letter is None or letter == abstain or LETTERS.index(letter) >= len(choices):
            if letter is None:
                self.stats["answer_unreadable"] += 1
            return Answer(text=INSUFFICIENT, abstained=True, evidence_ids=evidence, confidence=0.0)
        idx = LETTERS.index(letter)
        return Answer(
            text=str(choices[idx]), abstained=False, evidence_ids=evidence, confidence=confidence, choice_index=idx
        )

    def close(self) -> None:
        if self.release:
            from taskmem_ros.llm import release_engine

            release_engine(self.engine)

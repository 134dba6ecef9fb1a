"""The TaskMem memorization policy: a multimodal LLM (Qwen3-VL) writes each clip's memories.

Backend-agnostic: a ``ChatEngine`` runs the model - ``TransformersEngine`` on the robot's
GPU, ``OpenAIEngine`` against vLLM/SGLang. Clips are batched into one generate() call; the
Phase Two adapter (if any) is applied by the engine, and its id stamped on every entry.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from taskmem_ros.config import PolicyConfig
from taskmem_ros.llm.base import ChatEngine, ChatRequest
from taskmem_ros.policy.base import MemorizationPolicy
from taskmem_ros.policy.parsing import ENTRY_SCHEMA, ParsedEntry, parse_entries
from taskmem_ros.policy.prompt import clip_messages, recent_context
from taskmem_ros.types import NS_PER_S, Clip, MemoryDraft, MemoryKind, PolicyContext

log = logging.getLogger(__name__)


class LLMPolicy(MemorizationPolicy):
    def __init__(self, engine: ChatEngine, cfg: PolicyConfig, *, release: bool = True) -> None:
        """``release``: give the engine back on close (False when the caller owns it)."""
        self.engine = engine
        self.cfg = cfg
        self.release = release
        self.model_id = engine.model_id
        self.batch_size = cfg.batch_size
        self.stats: Counter[str] = Counter()
        self.last_outputs: list[str] = []  # raw model text of the last batch (debugging, training)
        # A text-only model reads perception evidence instead of video (policy.backend text_llm)
        self.text_only = cfg.backend == "text_llm" or not getattr(engine, "accepts_video", True)
        self._evidence: Any = None

    def evidence(self, clip: Clip) -> list[str] | None:
        """The clip's perception evidence lines for a text-only model; None for a VLM (it sees the video)."""
        if not self.text_only:
            return None
        if self._evidence is None:
            from taskmem_ros.policy.evidence import EvidenceReader

            self._evidence = EvidenceReader(self.cfg)
        from taskmem_ros.policy.evidence import clip_evidence

        return clip_evidence(clip, self._evidence)

    @property
    def adapter_id(self) -> str:
        return self.engine.adapter.adapter_id

    @property
    def active_adapter(self) -> Any:
        return getattr(self.engine, "active_meta", None)

    def load_adapter(self, path: str, sha256: str = "") -> tuple[Any, Any]:
        load = getattr(self.engine, "load_adapter", None)
        if load is None:
            from taskmem_ros.adapters import AdapterError

            if not path:
                return None, None
            raise AdapterError(
                f"engine {type(self.engine).__name__} cannot swap adapters here; with vLLM serve the LoRA "
                "(--enable-lora --lora-modules NAME=PATH) and set endpoint.model to NAME"
            )
        return load(path, sha256)  # type: ignore[no-any-return]

    def requests(self, clips: Sequence[Clip], contexts: Sequence[PolicyContext]) -> list[ChatRequest]:
        return [
            ChatRequest(
                clip_messages(clip, ctx, self.cfg, self.evidence(clip)),
                max_new_tokens=self.cfg.max_new_tokens,
                temperature=self.cfg.temperature,
                json_schema=ENTRY_SCHEMA,
                use_adapter=True,
                enable_thinking=self.cfg.enable_thinking,
            )
            for clip, ctx in zip(clips, contexts, strict=True)
        ]

    def memorize_batch(self, clips: Sequence[Clip], contexts: Sequence[PolicyContext]) -> list[list[MemoryDraft]]:
        gens = self.engine.generate(self.requests(clips, contexts))
        self.last_outputs = [g.text for g in gens]
        out: list[list[MemoryDraft]] = []
        earlier: list[str] = []  # clips of one batch are written in parallel: dedupe across them here
        for clip, ctx, gen in zip(clips, contexts, gens, strict=True):
            if gen.finish_reason == "error":
                self.stats["policy_generation_errors"] += 1
                log.warning("policy generation failed for clip %d: %s", clip.index, gen.error)
                out.append([])
                continue
            if gen.finish_reason == "length":
                self.stats["policy_outputs_cut_at_limit"] += 1
            self.stats["policy_generated_tokens"] += gen.completion_tokens
            res = parse_entries(
                gen.text,
                max_entries=self.cfg.max_entries,
                max_chars=self.cfg.max_entry_chars,
                context=recent_context(ctx.recent_memories, self.cfg.context_chars) + earlier,
                cut=gen.finish_reason == "length",
            )
            earlier += [e.text for e in res.entries]
            self.stats.update(res.counts)
            if not res.ok:
                log.warning("clip %d: unusable model output (%d chars) dropped", clip.index, len(gen.text))
            out.append([self._draft(clip, e) for e in res.entries])
        return out

    @staticmethod
    def _draft(clip: Clip, e: ParsedEntry) -> MemoryDraft:
        dur = clip.end_ns - clip.start_ns
        start = clip.start_ns
        end = clip.end_ns
        if e.start_s is not None:
            start = clip.start_ns + min(dur, max(0, int(e.start_s * NS_PER_S)))
        if e.end_s is not None:
            end = clip.start_ns + min(dur, max(0, int(e.end_s * NS_PER_S)))
        if end < start:
            start, end = clip.start_ns, clip.end_ns
        kind: MemoryKind = "semantic" if e.kind == "semantic" else "episodic"
        return MemoryDraft(text=e.text, kind=kind, start_ns=start, end_ns=end, source="llm")

    def close(self) -> None:
        if self._evidence is not None:
            self._evidence.close()
            self._evidence = None
        if self.release:
            from taskmem_ros.llm import release_engine

            release_engine(self.engine)

"""Chat-model engines shared by the memorization policy and the answerer.

``make_engine`` picks the backend: ``qwen3vl`` loads Qwen3-VL here with transformers (one
copy per process, shared), ``text_llm`` a text-only causal LM the same way (SmolLM2 by
default), ``openai`` talks to an OpenAI-compatible server (vLLM, SGLang,
``taskmem-serve``). Heavy imports happen inside the backends.
"""

from __future__ import annotations

from taskmem_ros.config import TaskMemConfig
from taskmem_ros.errors import MissingDependencyError
from taskmem_ros.llm.base import (
    AdapterState,
    ChatEngine,
    ChatRequest,
    EngineError,
    Generation,
    text_part,
    video_part,
)


def make_engine(cfg: TaskMemConfig, backend: str) -> ChatEngine:
    """The engine for ``backend`` ("qwen3vl", "text_llm" or "openai"); release it with ``release_engine``.
    ``text_llm`` is the same transformers engine on a text-only causal LM (``model.kind: text``)."""
    if backend in ("qwen3vl", "text_llm"):
        from taskmem_ros.llm.transformers_engine import shared_engine

        return shared_engine(cfg.model)
    if backend == "openai":
        from taskmem_ros.llm.openai_engine import OpenAIEngine

        return OpenAIEngine(cfg.endpoint)
    raise ValueError(f"backend={backend!r} is not a model backend; expected 'qwen3vl', 'text_llm' or 'openai'")


def release_engine(engine: ChatEngine) -> None:
    from taskmem_ros.llm.transformers_engine import TransformersEngine
    from taskmem_ros.llm.transformers_engine import release_engine as _release

    if isinstance(engine, TransformersEngine):
        _release(engine)
    else:
        engine.close()


__all__ = [
    "AdapterState",
    "ChatEngine",
    "ChatRequest",
    "EngineError",
    "Generation",
    "MissingDependencyError",
    "make_engine",
    "release_engine",
    "text_part",
    "video_part",
]

"""``make_policy``: the config's ``policy.backend`` to a policy object.

Apart from ``base.py`` so the interface module imports none of its implementations (they import
``base``; the factory imports them, lazily, so heavy backends load only when chosen).
"""

from __future__ import annotations

from taskmem_ros.config import PolicyConfig, TaskMemConfig
from taskmem_ros.policy.base import MemorizationPolicy


def make_policy(cfg: TaskMemConfig | PolicyConfig) -> MemorizationPolicy:
    """The policy ``policy.backend`` names. Model backends need the whole config (``model.*``
    or ``endpoint.*``); the perception baseline only its own section."""
    pcfg = cfg.policy if isinstance(cfg, TaskMemConfig) else cfg
    if pcfg.backend == "perception":
        from taskmem_ros.policy.perception.policy import PerceptionPolicy

        return PerceptionPolicy(pcfg)
    if not isinstance(cfg, TaskMemConfig):
        raise ValueError(f"policy.backend={pcfg.backend!r} needs the full TaskMemConfig (model/endpoint sections)")
    from taskmem_ros.llm import make_engine
    from taskmem_ros.policy.llm_policy import LLMPolicy

    return LLMPolicy(make_engine(cfg, pcfg.backend), pcfg)

"""Memorization policies: turn a clip (+ context of earlier memory) into memory drafts."""

from taskmem_ros.policy.base import MemorizationPolicy
from taskmem_ros.policy.factory import make_policy

__all__ = ["MemorizationPolicy", "make_policy"]

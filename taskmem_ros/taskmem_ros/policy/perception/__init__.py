"""CPU perception baseline: OCR, faces, colours, scene changes and speech -> short factual memories."""

from taskmem_ros.policy.perception.policy import PerceptionPolicy

__all__ = ["PerceptionPolicy"]

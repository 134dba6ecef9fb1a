"""Answering tasks from memory only (the CPU retrieval baseline; model answerers come later)."""

from taskmem_ros.answer.retrieval import INSUFFICIENT, RetrievalAnswerer, calibrate_threshold

__all__ = ["INSUFFICIENT", "RetrievalAnswerer", "calibrate_threshold"]

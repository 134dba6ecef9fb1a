"""Benchmark loaders: each reads a benchmark's real release format into an :class:`EvalDataset`.

Loaders never fail on a bad record (it is skipped and noted in ``dataset.notes``) nor on missing
media (listed in ``dataset.missing`` with the question ids that lose evidence); the run goes on
with what exists. Only a missing or unreadable annotation file raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskmem_ros.evaluation.datasets.egolife import load_egolife
from taskmem_ros.evaluation.datasets.egotempo import load_egotempo
from taskmem_ros.evaluation.datasets.videomme import load_videomme
from taskmem_ros.evaluation.types import EvalDataset

DATASETS = ("videomme", "egolife", "egotempo")
EGOTEMPO_QA_NAME = "egotempo_openQA.json"

__all__ = ["DATASETS", "load_dataset", "load_egolife", "load_egotempo", "load_videomme"]


def load_dataset(name: str, root: str | Path, **kw: Any) -> EvalDataset:
    """Load a benchmark by name from ``root``; ``kw`` goes to that loader.

    EgoTempo has no single root in its release: ``qa_file`` defaults to
    ``root/egotempo_openQA.json`` and ``video_dir`` to ``root/videos`` if that folder exists,
    else ``root`` itself."""
    root = Path(root)
    if name == "videomme":
        return load_videomme(root, **kw)
    if name == "egolife":
        return load_egolife(root, **kw)
    if name == "egotempo":
        qa_file = kw.pop("qa_file", None) or root / EGOTEMPO_QA_NAME
        video_dir = kw.pop("video_dir", None) or (root / "videos" if (root / "videos").is_dir() else root)
        return load_egotempo(qa_file, video_dir, **kw)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")

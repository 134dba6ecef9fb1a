"""Clips kept for training: Phase Two samples new memories for recent clips, so their
keyframes and transcript must outlive the memorizer's queue.

One ``.npz`` per clip under ``<dir>/<stream>/`` (keyframes as uint8 arrays, stamps,
transcript), written atomically; the oldest files beyond ``max_clips`` are pruned. File names
start with the clip's start time (so name order is time order) and carry the memorizer run,
so a second run over the same times never overwrites the first run's clips.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from taskmem_ros.fsutil import atomic_write
from taskmem_ros.types import Clip, TranscriptSegment, VideoFrame

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    return _SAFE.sub("_", name).strip("._") or "stream"


class ClipArchive:
    def __init__(self, root: str | Path, max_clips: int = 2000) -> None:
        self.root = Path(root)
        self.max_clips = max_clips

    def path(self, clip: Clip) -> Path:
        run = f"_{_safe(clip.run)}" if clip.run else ""
        return self.root / _safe(clip.stream) / f"{clip.start_ns:020d}_{clip.index:08d}{run}.npz"

    def save(self, clip: Clip) -> Path:
        target = self.path(clip)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "stream": clip.stream,
            "index": clip.index,
            "run": clip.run,
            "start_ns": clip.start_ns,
            "end_ns": clip.end_ns,
            "stamps": [f.stamp_ns for f in clip.keyframes],
            "transcript": [[s.start_ns, s.end_ns, s.text, s.confidence] for s in clip.transcript],
        }
        arrays: dict[str, Any] = {f"kf{i}": f.rgb for i, f in enumerate(clip.keyframes)}
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
        atomic_write(target, buf.getvalue())
        self.prune(target.parent)
        return target

    def prune(self, stream_dir: Path) -> None:
        files = sorted(stream_dir.glob("*.npz"))
        for old in files[: max(0, len(files) - self.max_clips)]:
            old.unlink(missing_ok=True)

    def load(self, path: str | Path) -> Clip:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            frames = [VideoFrame(int(t), data[f"kf{i}"]) for i, t in enumerate(meta["stamps"])]
        return Clip(
            stream=meta["stream"],
            index=int(meta["index"]),
            start_ns=int(meta["start_ns"]),
            end_ns=int(meta["end_ns"]),
            keyframes=frames,
            transcript=[TranscriptSegment(int(a), int(b), str(t), float(c)) for a, b, t, c in meta["transcript"]],
            run=str(meta.get("run", "")),
        )

    def recent(self, stream: str | None = None, limit: int = 64, *, until_ns: int | None = None) -> list[Clip]:
        """The most recent kept clips (oldest first); unreadable files are skipped and logged."""
        dirs = [self.root / _safe(stream)] if stream else [d for d in self.root.glob("*") if d.is_dir()]
        files = sorted((f for d in dirs for f in d.glob("*.npz")), key=lambda f: f.name)
        clips: list[Clip] = []
        for f in reversed(files):
            if len(clips) >= limit:
                break
            try:
                clip = self.load(f)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("kept clip %s unreadable, skipped: %s", f, exc)
                continue
            if until_ns is None or clip.end_ns <= until_ns:
                clips.append(clip)
        return clips[::-1]

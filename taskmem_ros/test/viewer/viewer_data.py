"""Test stores for the viewer: real EpisodicStore writes, a real ClipArchive, and the hostile
memory text the viewer must show inert (memories come from models and speech)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taskmem_ros.store import EpisodicStore
from taskmem_ros.store.clip_archive import ClipArchive
from taskmem_ros.types import Clip, MemoryDraft, VideoFrame

S = 1_000_000_000
SCRIPT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
HOSTILE_STREAM = "../../etc/passwd"
ADAPTER = "phase2-20260101T000000000000Z"


def add_hostile(store: EpisodicStore, archive: Path, outside: Path) -> int:
    """A stream named like a path escape, memory text that is markup, and its clip file in
    the archive replaced by a symlink to a file outside it. Returns the hostile clip's id."""
    t0 = 10_000 * S
    cid = store.add_clip(HOSTILE_STREAM, 0, t0, t0 + 10 * S, keyframes=1, transcript=SCRIPT)
    store.add_entries(
        HOSTILE_STREAM, [MemoryDraft(text=SCRIPT, start_ns=t0, end_ns=t0 + 10 * S, source="speech")], clip_id=cid
    )
    clip = Clip(HOSTILE_STREAM, 0, t0, t0 + 10 * S, keyframes=[VideoFrame(t0, np.zeros((8, 8, 3), np.uint8))])
    path = ClipArchive(archive).save(clip)
    assert path.resolve().is_relative_to(archive.resolve())  # the archive sanitised the name
    outside.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    path.unlink()
    path.symlink_to(outside)
    store.register_adapter(
        "../../etc/passwd" + SCRIPT, kind="steering", base_model="tiny", path="../../etc/passwd", sha256="0" * 64
    )
    return cid


def add_phase2_round(store: EpisodicStore, stream: str, t_ns: int) -> None:
    """A Phase Two adapter in the registry (as training/phase2.py registers it, with its held-out
    before/after metrics), activated, and memories the policy then wrote under it."""
    store.register_adapter(
        ADAPTER,
        kind="steering",
        base_model="tiny-qwen3vl",
        path="/adapters/phase2.safetensors",
        sha256="ab" * 32,
        metrics={
            "before_accuracy": 0.5,
            "after_accuracy": 1.0,
            "before_sampled_useful": 0.62,
            "after_sampled_useful": 0.92,
            "pairs": 12,
        },
        active=True,
    )
    store.add_entries(
        stream,
        [MemoryDraft(text="The red mug is on the top shelf.", start_ns=t_ns, end_ns=t_ns + 10 * S, source="policy")],
        adapter_id=ADAPTER,
        model_id="tiny-qwen3vl",
    )

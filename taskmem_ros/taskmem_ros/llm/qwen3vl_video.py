"""Keyframes -> Qwen3-VL video input, the same tensors ``Qwen3VLVideoProcessor`` makes.

The upstream video processor needs torchvision; robots often run a CUDA torch without a
matching torchvision wheel, and our keyframes are already decoded RGB arrays with their
own (irregular) timestamps. So we resize with OpenCV and reuse transformers' own
``smart_resize`` and ``patchify`` for the geometry and patch layout; the text placeholder
(``<t seconds><|vision_start|><|video_pad|>*n<|vision_end|>`` per temporal patch) follows
``Qwen3VLProcessor.replace_video_token``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class VideoGeometry:
    patch_size: int = 16
    temporal_patch_size: int = 2
    merge_size: int = 2
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @classmethod
    def from_pretrained_dir(cls, files: dict[str, Any]) -> VideoGeometry:
        """From the parsed ``video_preprocessor_config.json`` (or ``preprocessor_config.json``)."""
        return cls(
            patch_size=int(files.get("patch_size", 16)),
            temporal_patch_size=int(files.get("temporal_patch_size", 2)),
            merge_size=int(files.get("merge_size", 2)),
            image_mean=tuple(files.get("image_mean", (0.5, 0.5, 0.5))),  # type: ignore[arg-type]
            image_std=tuple(files.get("image_std", (0.5, 0.5, 0.5))),  # type: ignore[arg-type]
        )


def read_geometry(model_id: str, *, revision: str | None, local_files_only: bool) -> VideoGeometry:
    """Geometry from a local directory or the hub cache; Qwen3-VL defaults when absent."""
    from transformers.utils import cached_file

    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        local = Path(model_id) / name
        path: str | None
        if local.is_file():
            path = str(local)
        else:
            try:
                path = cached_file(
                    model_id,
                    name,
                    revision=revision,
                    local_files_only=local_files_only,
                    _raise_exceptions_for_missing_entries=False,
                )
            except OSError:
                path = None
        if path:
            return VideoGeometry.from_pretrained_dir(json.loads(Path(path).read_text()))
    return VideoGeometry()


@dataclass
class VideoInput:
    pixel_values: Any  # torch.Tensor (seq, C * T * P * P)
    grid_thw: tuple[int, int, int]
    timestamps_s: list[float] = field(default_factory=list)  # one per temporal patch

    def placeholder(self, geometry: VideoGeometry, video_token: str, start: str, end: str) -> str:
        t, h, w = self.grid_thw
        per_frame = (h * w) // (geometry.merge_size**2)
        return "".join(f"<{ts:.1f} seconds>{start}{video_token * per_frame}{end}" for ts in self.timestamps_s[:t])


def video_input(
    frames: Sequence[np.ndarray],
    timestamps_s: Sequence[float],
    geometry: VideoGeometry,
    *,
    min_pixels: int,
    max_pixels: int,
) -> VideoInput:
    """``max_pixels``/``min_pixels`` are per frame (the policy's budget per keyframe)."""
    import torch
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor, smart_resize

    if len(frames) == 0:
        raise ValueError("a video part needs at least one frame")
    frames = list(frames)
    ts = [float(t) for t in timestamps_s]
    tp = geometry.temporal_patch_size
    while len(frames) < tp or len(frames) % tp:  # upstream repeats the last frame the same way
        frames.append(frames[-1])
        ts.append(ts[-1])
    height, width = frames[0].shape[:2]
    factor = geometry.patch_size * geometry.merge_size
    new_h, new_w = smart_resize(
        num_frames=len(frames),
        height=height,
        width=width,
        temporal_factor=tp,
        factor=factor,
        min_pixels=min_pixels * len(frames),
        max_pixels=max_pixels * len(frames),
    )
    pixels = np.stack([_resize(f, new_w, new_h) for f in frames]).astype(np.float32) / np.float32(255.0)
    mean, std = np.asarray(geometry.image_mean, np.float32), np.asarray(geometry.image_std, np.float32)
    normed = ((pixels - mean) / std).astype(np.float32)
    videos = torch.from_numpy(normed).permute(0, 3, 1, 2).unsqueeze(0).contiguous()  # (1, T, C, H, W)
    patches, grid_t, grid_h, grid_w = Qwen3VLVideoProcessor.patchify(  # type: ignore[misc]
        None,  # type: ignore[arg-type]  # a pure function of its arguments
        videos,
        patch_size=geometry.patch_size,
        merge_size=geometry.merge_size,
        temporal_patch_size=tp,
    )
    group_ts = [sum(ts[i : i + tp]) / tp for i in range(0, len(ts), tp)]
    return VideoInput(pixel_values=patches[0], grid_thw=(int(grid_t), int(grid_h), int(grid_w)), timestamps_s=group_ts)


def _resize(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"keyframe must be RGB (H, W, 3), got shape {frame.shape}")
    if frame.shape[:2] == (h, w):
        return frame
    shrink = w * h < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)

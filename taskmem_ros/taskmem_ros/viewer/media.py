"""Keyframes from the clip archive (``ingest.keep_clips_dir``), served as small JPEGs.

A request never names a file: it names a clip id, the store says which stream/index/start
that clip has, and ``ClipArchive.path`` (which sanitises the stream name) builds the file
name. The result must still resolve inside the archive root (a symlink planted in the
archive cannot lead out of it), so no request can read anything else on the machine.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from taskmem_ros.store.browse import ClipRow
from taskmem_ros.store.clip_archive import ClipArchive
from taskmem_ros.types import Clip

log = logging.getLogger(__name__)

THUMB_WIDTHS = (160, 320, 640)


class ClipFrames:
    """Keyframe lookup confined to one archive root ("" = no archive: nothing is served)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve() if str(root) else None
        self._archive = ClipArchive(self.root) if self.root is not None else None

    @property
    def enabled(self) -> bool:
        return self._archive is not None

    def file_for(self, clip: ClipRow) -> Path | None:
        """The kept file of ``clip`` if there is one inside the archive root, else None."""
        if self._archive is None or self.root is None:
            return None
        # the archive names a file after the memorizer run and its segmenter's index (as the clip
        # had them when it was saved); rows from before runs were recorded used the store's index
        index = clip.index if clip.run_index is None else clip.run_index
        key = Clip(stream=clip.stream, index=index, start_ns=clip.start_ns, end_ns=clip.end_ns, run=clip.run)
        path = self._archive.path(key)
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.root) or not resolved.is_file():
            log.warning("clip file %s resolves outside the archive %s; not served", path, self.root)
            return None
        return resolved

    def jpeg(self, clip: ClipRow, index: int, width: int) -> bytes | None:
        """Keyframe ``index`` of ``clip`` scaled to ``width`` px, or None if it is not kept."""
        path = self.file_for(clip)
        if path is None or width not in THUMB_WIDTHS or index < 0:
            return None
        try:
            return _encode(str(path), path.stat().st_mtime_ns, int(index), int(width))
        except (OSError, ValueError, KeyError) as exc:  # pruned meanwhile, truncated, not an archive file
            log.warning("keyframe %d of %s unreadable: %s", index, path, exc)
            return None


@lru_cache(maxsize=512)
def _encode(path: str, _mtime_ns: int, index: int, width: int) -> bytes | None:
    """JPEG of one archived keyframe (cached per file version; ``np.load`` never unpickles)."""
    import cv2

    with np.load(path, allow_pickle=False) as data:
        key = f"kf{index}"
        if key not in data.files:
            return None
        rgb = np.asarray(data[key])
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.shape[1] == 0:
        raise ValueError(f"keyframe {index} has shape {rgb.shape} / {rgb.dtype}, expected HxWx3 uint8")
    h, w = rgb.shape[:2]
    if w > width:
        rgb = cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())

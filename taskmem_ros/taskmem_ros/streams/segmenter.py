"""Cuts the endless camera + microphone stream into fixed clips for the memorization policy.

Clip k spans ``[origin + k*hop, origin + k*hop + clip)`` with ``hop = clip - overlap``, on the
stream's own clock, so a replayed bag yields exactly the clips the live run did. A clip is
emitted once every active source (camera, microphone) has passed its end by
``max_lateness_seconds``: topics are delivered independently, and under load one can run
seconds ahead of the other, so a single frontier would close clips before the slower source's
data arrives. A source more than ``source_timeout_seconds`` behind the newest counts as silent
(a dead microphone must not stall memory). Data for clips already emitted is dropped and
counted. Only keyframes (``keyframe_fps``, downscaled) and one fixed audio buffer per open
clip are held, so memory is bounded whatever the input rate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from math import ceil, floor

import numpy as np

from taskmem_ros.config import SegmenterConfig
from taskmem_ros.streams.audio import resample
from taskmem_ros.streams.image_codec import downscale
from taskmem_ros.types import NS_PER_S, AudioBlock, Clip, VideoFrame

STAT_KEYS = (
    "frames_in",
    "keyframes_kept",
    "frames_skipped",
    "frames_dropped_late",
    "frames_dropped_invalid",
    "audio_in",
    "audio_dropped",
    "audio_dropped_late",
    "audio_dropped_nonfinite",
    "audio_dropped_invalid",
    "clips_out",
    "clips_dropped_unpopped",
    "restarts",
)
MAX_READY = 32  # finished clips held for a caller that never pops; older ones are dropped


@dataclass
class _OpenClip:
    start_ns: int
    end_ns: int
    keyframes: dict[int, VideoFrame] = field(default_factory=dict)  # keyframe slot -> frame
    audio: np.ndarray | None = None  # allocated on first audio, zeros fill the gaps


class ClipSegmenter:
    """Push frames and audio in any order; collect finished clips with ``pop_ready``/``flush``.

    Not thread-safe: the caller (Memorizer) serialises pushes under its own lock.
    """

    def __init__(self, cfg: SegmenterConfig, stream: str) -> None:
        self.cfg = cfg
        self.stream = stream
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        self._clip_ns = round(cfg.clip_seconds * NS_PER_S)
        self._hop_ns = self._clip_ns - round(cfg.overlap_seconds * NS_PER_S)
        self._late_ns = round(cfg.max_lateness_seconds * NS_PER_S)
        self._restart_ns = round(cfg.restart_gap_seconds * NS_PER_S)
        self._source_timeout_ns = round(cfg.source_timeout_seconds * NS_PER_S)
        self._kf_ns = max(1, round(NS_PER_S / cfg.keyframe_fps))
        self._audio_len = round(cfg.clip_seconds * cfg.audio_rate)
        self._ready: list[Clip] = []
        self._emitted = 0
        self._reset()

    def _reset(self) -> None:
        self._origin: int | None = None
        self._frontier: int | None = None  # newest stamp of any source
        self._source_frontier: dict[str, int] = {}
        self._closed_upto = -1  # highest clip grid index already emitted (or skipped)
        self._open: dict[int, _OpenClip] = {}
        self._filled_slots: set[int] = set()

    # -- input -------------------------------------------------------------------------
    def wants_frame(self, stamp_ns: int) -> bool:
        """Would a frame with this stamp become a keyframe? Lets callers skip decoding it."""
        if stamp_ns <= 0:
            return False
        if self._origin is None or self._jumped(stamp_ns):
            return True
        if not self._open_indices(stamp_ns):
            return False
        return (stamp_ns - self._origin) // self._kf_ns not in self._filled_slots

    def push_frame(self, frame: VideoFrame) -> bool:
        """Add a decoded frame; returns True if it was kept as a keyframe."""
        rgb = frame.rgb
        if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
            self.stats["frames_in"] += 1
            self.stats["frames_dropped_invalid"] += 1
            return False
        return self.push_frame_lazy(frame.stamp_ns, lambda max_pixels: downscale(rgb, max_pixels), frame.frame_id)

    def push_frame_lazy(self, stamp_ns: int, decode: Callable[[int], np.ndarray], frame_id: str = "") -> bool:
        """Like push_frame, but ``decode(max_pixels) -> RGB`` runs only for frames kept as keyframes."""
        self.stats["frames_in"] += 1
        stamp_ns = int(stamp_ns)
        if stamp_ns <= 0:
            self.stats["frames_dropped_invalid"] += 1
            return False
        self._maybe_restart(stamp_ns)
        ks = self._open_indices(stamp_ns)
        kept = False
        if not ks:
            self.stats["frames_dropped_late"] += 1
        else:
            assert self._origin is not None
            slot = (stamp_ns - self._origin) // self._kf_ns
            if slot in self._filled_slots:
                self.stats["frames_skipped"] += 1
            else:
                rgb = decode(self.cfg.max_pixels)
                if not rgb.flags.owndata or not rgb.flags.c_contiguous:
                    rgb = np.array(rgb, copy=True)  # never pin a message buffer
                kf = VideoFrame(stamp_ns=stamp_ns, rgb=rgb, frame_id=frame_id)
                self._filled_slots.add(slot)
                for k in ks:
                    self._clip(k).keyframes[slot] = kf
                self.stats["keyframes_kept"] += 1
                kept = True
        self._advance(stamp_ns, "video")
        return kept

    def push_audio(self, block: AudioBlock) -> None:
        """Add mono audio; resampled to ``cfg.audio_rate`` if needed, gaps become silence."""
        self.stats["audio_in"] += 1
        samples = np.asarray(block.samples, dtype=np.float32).reshape(-1)
        if block.stamp_ns <= 0 or block.rate <= 0:
            self._drop_audio("audio_dropped_invalid")
            return
        if not np.isfinite(samples).all():
            self._drop_audio("audio_dropped_nonfinite")
            return
        if samples.size == 0:
            return
        rate = self.cfg.audio_rate
        if block.rate != rate:
            samples = resample(samples, block.rate, rate)
        t0 = int(block.stamp_ns)
        self._maybe_restart(t0)
        assert self._origin is not None
        if t0 + len(samples) * NS_PER_S // rate <= self._open_start_ns():
            self._drop_audio("audio_dropped_late")
            self._advance(t0, "audio")
            return
        chunk = max(1, self._hop_ns * rate // NS_PER_S)  # bound open clips even for huge blocks
        for i in range(0, len(samples), chunk):
            part = samples[i : i + chunk]
            t = t0 + i * NS_PER_S // rate
            self._write_audio(t, part)
            self._advance(t + len(part) * NS_PER_S // rate, "audio")

    # -- output ------------------------------------------------------------------------
    def pop_ready(self) -> list[Clip]:
        out, self._ready = self._ready, []
        return out

    def flush(self) -> list[Clip]:
        """End of stream: emit every open clip (even unfinished) and start afresh."""
        self._emit_all_open()
        self._reset()
        return self.pop_ready()

    # -- internals ---------------------------------------------------------------------
    def _drop_audio(self, reason: str) -> None:
        self.stats["audio_dropped"] += 1
        self.stats[reason] += 1

    def _jumped(self, t: int) -> bool:
        return self._frontier is not None and abs(t - self._frontier) > self._restart_ns

    def _maybe_restart(self, t: int) -> None:
        if self._origin is None:
            self._origin = t
            return
        if self._jumped(t):  # bag loop / restart or a long outage: close what is open, re-anchor
            self._emit_all_open()
            self._reset()
            self._origin = t
            self.stats["restarts"] += 1

    def _open_indices(self, t: int) -> list[int]:
        """Grid indices of the clips containing ``t`` that are not yet emitted."""
        if self._origin is None:
            return []
        rel = t - self._origin
        if rel < 0:
            return []
        hi = rel // self._hop_ns
        lo = max(0, -((self._clip_ns - 1 - rel) // self._hop_ns))  # ceil((rel - clip + 1) / hop)
        lo = max(lo, self._closed_upto + 1)
        return list(range(lo, hi + 1))

    def _open_start_ns(self) -> int:
        assert self._origin is not None
        return self._origin + (self._closed_upto + 1) * self._hop_ns

    def _clip(self, k: int) -> _OpenClip:
        clip = self._open.get(k)
        if clip is None:
            assert self._origin is not None
            start = self._origin + k * self._hop_ns
            clip = self._open[k] = _OpenClip(start, start + self._clip_ns)
        return clip

    def _write_audio(self, t: int, part: np.ndarray) -> None:
        rate = self.cfg.audio_rate
        t_end = t + len(part) * NS_PER_S // rate
        for k in sorted(set(self._open_indices(t)) | set(self._open_indices(max(t, t_end - 1)))):
            clip = self._clip(k)
            if clip.audio is None:
                clip.audio = np.zeros(self._audio_len, dtype=np.float32)
            off = floor((t - clip.start_ns) * rate / NS_PER_S)
            src_lo = max(0, -off)
            dst_lo = max(0, off)
            n = min(len(part) - src_lo, self._audio_len - dst_lo)
            if n > 0:
                clip.audio[dst_lo : dst_lo + n] = part[src_lo : src_lo + n]

    def _advance(self, t_end: int, source: str) -> None:
        if self._frontier is None or t_end > self._frontier:
            self._frontier = t_end
        if t_end > self._source_frontier.get(source, t_end - 1):
            self._source_frontier[source] = t_end
        assert self._origin is not None
        active = [f for f in self._source_frontier.values() if f >= self._frontier - self._source_timeout_ns]
        watermark = min(active) - self._late_ns
        closed = floor((watermark - self._origin - self._clip_ns) / self._hop_ns)
        if closed <= self._closed_upto:
            return
        for k in sorted(k for k in self._open if k <= closed):
            self._emit(self._open.pop(k))
        self._closed_upto = closed
        first_open = ceil((self._open_start_ns() - self._origin) / self._kf_ns)
        self._filled_slots = {s for s in self._filled_slots if s >= first_open - 1}

    def _emit_all_open(self) -> None:
        """Emit unfinished clips cut at the frontier, so they never claim time with no data."""
        frontier = self._frontier if self._frontier is not None else 0
        for k in sorted(self._open):
            oc = self._open.pop(k)
            if frontier < oc.end_ns:
                oc.end_ns = max(frontier, oc.start_ns + 1)
                if oc.audio is not None:
                    oc.audio = oc.audio[: max(1, ceil((oc.end_ns - oc.start_ns) * self.cfg.audio_rate / NS_PER_S))]
            self._emit(oc)

    def _emit(self, oc: _OpenClip) -> None:
        if not oc.keyframes and oc.audio is None:
            return
        if len(self._ready) >= MAX_READY:
            self._ready.pop(0)
            self.stats["clips_dropped_unpopped"] += 1
        self._ready.append(
            Clip(
                stream=self.stream,
                index=self._emitted,
                start_ns=oc.start_ns,
                end_ns=oc.end_ns,
                keyframes=[oc.keyframes[s] for s in sorted(oc.keyframes)],
                audio=oc.audio,
                audio_rate=self.cfg.audio_rate,
            )
        )
        self._emitted += 1
        self.stats["clips_out"] += 1

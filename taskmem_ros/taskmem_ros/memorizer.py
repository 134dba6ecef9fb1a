"""The memory loop: sensor data -> clips -> memorization policy -> episodic store.

Sensor callbacks only segment (cheap); speech processing, the policy and the store write
run on a worker thread, so a slow policy never blocks the ROS executor. When the policy
falls behind, pending clips are dropped by ``ingest.drop_policy`` and counted.
The same class serves the lifecycle node and in-process bag replay, so both produce the
same memory for the same input.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from taskmem_ros.config import TaskMemConfig
from taskmem_ros.policy.base import MemorizationPolicy
from taskmem_ros.store import EpisodicStore
from taskmem_ros.streams.segmenter import ClipSegmenter
from taskmem_ros.streams.speech import SpeechPipeline
from taskmem_ros.types import AudioBlock, Clip, MemoryRecord, PolicyContext, TranscriptSegment, VideoFrame

log = logging.getLogger(__name__)

CommittedCallback = Callable[[list[MemoryRecord]], None]


class AdapterSwap(NamedTuple):
    previous: Any  # adapters.AdapterMeta | None
    active: Any


STAT_KEYS = (
    "clips_queued",
    "clips_dropped_backlog",
    "clips_failed",
    "clips_memorized",
    "entries_committed",
    "store_errors",
    "adapter_swaps",
    "adapter_swaps_failed",
)


def new_run_id() -> str:
    """Id of one memorizer run (a boot, a replay): UTC start time + random suffix, sortable."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"


class Memorizer:
    def __init__(
        self,
        cfg: TaskMemConfig,
        store: EpisodicStore,
        policy: MemorizationPolicy,
        *,
        on_committed: CommittedCallback | None = None,
        speech: SpeechPipeline | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.policy = policy
        self.on_committed = on_committed
        self.speech = speech if speech is not None else SpeechPipeline(cfg.segmenter, asr_cfg=cfg.asr)
        self.batch_size = max(1, batch_size if batch_size is not None else policy.batch_size)
        # Clips are stored as (stream, run, index): the segmenter counts from 0 every run.
        self.run_id = new_run_id()
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        self.policy_latency_s: float | None = None  # seconds per clip of the last batch (diagnostics)
        self.focus_hints: list[str] = []
        # Transcript from outside the audio (a dataset's subtitles): merged into each clip it overlaps.
        self.subtitles: list[TranscriptSegment] = []
        self._segmenter = ClipSegmenter(cfg.segmenter, cfg.stream)
        self._pending: deque[Clip] = deque()
        self._cv = threading.Condition()
        self._busy = False
        self._progress = 0  # steps the worker finished; flush waits while this moves
        self._stop = False
        self._worker: threading.Thread | None = None
        # Held while a batch is memorized and committed: an adapter swap waits for it, so every
        # entry carries the adapter that actually wrote it.
        self._batch_lock = threading.Lock()
        self.archive: Any = None
        if cfg.ingest.keep_clips_dir:  # Phase Two samples new memories for recent clips
            from taskmem_ros.store.clip_archive import ClipArchive

            self.archive = ClipArchive(cfg.ingest.keep_clips_dir, cfg.ingest.keep_clips_max)

    # -- input side (any thread, cheap) -------------------------------------------------
    def push_frame(self, frame: VideoFrame) -> None:
        with self._cv:
            self._segmenter.push_frame(frame)
            self._enqueue(self._segmenter.pop_ready())

    def push_frame_lazy(self, stamp_ns: int, decode: Callable[[int | None], np.ndarray], frame_id: str = "") -> bool:
        """Offer a frame whose pixels are decoded only if it becomes a keyframe (most are not).
        Decode errors propagate to the caller, which counts the drop."""
        with self._cv:
            kept = self._segmenter.push_frame_lazy(stamp_ns, decode, frame_id)
            self._enqueue(self._segmenter.pop_ready())
            return kept

    def push_audio(self, block: AudioBlock) -> None:
        with self._cv:
            self._segmenter.push_audio(block)
            self._enqueue(self._segmenter.pop_ready())

    def submit(self, clips: list[Clip]) -> None:
        """Queue ready-made clips (datasets with their own segmentation, benchmarks)."""
        with self._cv:
            self._enqueue(list(clips))

    def _enqueue(self, clips: list[Clip]) -> None:
        limit = self.cfg.ingest.max_pending_clips
        for clip in clips:
            clip.run = clip.run or self.run_id
            if len(self._pending) >= limit and self._worker is not None:
                self.stats["clips_dropped_backlog"] += 1
                dropped = self._pending.popleft() if self.cfg.ingest.drop_policy == "drop_oldest" else clip
                log.warning(
                    "policy is behind real time: dropping clip %d of %s (%s)",
                    dropped.index,
                    dropped.stream,
                    self.cfg.ingest.drop_policy,
                )
                if dropped is clip:
                    continue
            self._pending.append(clip)
            self.stats["clips_queued"] += 1
        if clips:
            self._cv.notify_all()

    # -- processing side ----------------------------------------------------------------
    def process_pending(self) -> list[MemoryRecord]:
        """Memorize every queued clip on the calling thread (in-process replay, tests)."""
        out: list[MemoryRecord] = []
        while True:
            with self._cv:
                batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
            if not batch:
                return out
            out.extend(self._memorize(batch))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Close the open clip and wait until everything queued is committed.

        ``timeout_s`` bounds a stall, not the drain: the wait goes on as long as the worker keeps
        finishing steps (a clip's speech, a policy batch, a commit), so a slow or loaded machine
        gives a slower flush, not a failed one; False only after ``timeout_s`` without progress.
        """
        with self._cv:
            self._enqueue(self._segmenter.flush())
        if self._worker is None:
            self.process_pending()
            return True

        def drained() -> bool:
            return not self._pending and not self._busy

        with self._cv:
            while not drained():
                seen = self._progress
                # (the lambda runs only within this iteration, so binding `seen` late is right)
                if not self._cv.wait_for(lambda: drained() or self._progress != seen, timeout=timeout_s):  # noqa: B023
                    return False
            return True

    def _tick(self) -> None:
        """One step of work done (the flush's stall clock restarts)."""
        with self._cv:
            self._progress += 1
            self._cv.notify_all()

    def start(self) -> None:
        if self._worker is not None:
            return
        self._stop = False
        self._worker = threading.Thread(target=self._run, name=f"memorizer-{self.cfg.stream}", daemon=True)
        self._worker.start()

    def stop(self, drain: bool = True, timeout_s: float = 60.0) -> None:
        if self._worker is None:
            return
        if drain:
            self.flush(timeout_s)
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._worker.join(timeout_s)
        self._worker = None

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending or self._stop)
                if self._stop and not self._pending:
                    return
                batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
                self._busy = True
            try:
                self._memorize(batch)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _memorize(self, clips: list[Clip]) -> list[MemoryRecord]:
        with self._batch_lock:
            return self._memorize_locked(clips)

    def _memorize_locked(self, clips: list[Clip]) -> list[MemoryRecord]:
        committed: list[MemoryRecord] = []
        try:
            for clip in clips:
                self.speech.annotate(clip)
                self._tick()
                if self.subtitles:
                    clip.transcript += [
                        s for s in self.subtitles if s.end_ns > clip.start_ns and s.start_ns < clip.end_ns
                    ]
            contexts = [self._context(clip) for clip in clips]
            t0 = time.perf_counter()
            drafts_per_clip = self.policy.memorize_batch(clips, contexts)
            self.policy_latency_s = (time.perf_counter() - t0) / max(1, len(clips))
            self._tick()
        except Exception:  # a broken clip or model must not kill the loop
            log.exception("policy failed on clips %s", [c.index for c in clips])
            self.stats["clips_failed"] += len(clips)
            return committed
        for clip, drafts in zip(clips, drafts_per_clip, strict=True):
            try:
                clip_id = self.store.add_clip(
                    clip.stream,
                    clip.index,
                    clip.start_ns,
                    clip.end_ns,
                    keyframes=len(clip.keyframes),
                    transcript=" ".join(seg.text for seg in clip.transcript),
                    run=clip.run or self.run_id,
                )
                records = self.store.add_entries(
                    clip.stream,
                    drafts,
                    clip_id=clip_id,
                    model_id=self.policy.model_id,
                    adapter_id=self.policy.adapter_id,
                )
            except Exception:
                log.exception("store write failed for clip %d; earlier memory is intact", clip.index)
                self.stats["store_errors"] += 1
                continue
            self.stats["clips_memorized"] += 1
            self._tick()
            self.stats["entries_committed"] += len(records)
            if self.archive is not None:
                try:
                    self.archive.save(clip)
                except OSError as exc:
                    self.stats["clips_not_kept"] += 1
                    log.warning("clip %d not kept for training: %s", clip.index, exc)
            committed.extend(records)
            if self.on_committed is not None and records:
                try:
                    self.on_committed(records)
                except Exception:
                    log.exception("on_committed callback failed")
        return committed

    def _context(self, clip: Clip) -> PolicyContext:
        n = self.cfg.policy.context_size
        recent = self.store.recent(clip.stream, n, as_of_ns=clip.start_ns) if n else []
        return PolicyContext(
            recent_memories=recent, focus_hints=list(self.focus_hints), adapter_id=self.policy.adapter_id
        )

    # -- adapters -------------------------------------------------------------------------
    def load_adapter(self, path: str, sha256: str = "", adapter_id: str = "") -> AdapterSwap:
        """Swap the policy's adapter between batches ("" = base model) and record it in the
        store. Any failure - bad file, checksum, base model, layer, store - rolls back to the
        previous adapter and raises AdapterError; memorization never stops."""
        from taskmem_ros.adapters import AdapterError

        try:
            return self._swap_adapter(path, sha256, adapter_id)
        except AdapterError:
            self.stats["adapter_swaps_failed"] += 1
            raise

    def _swap_adapter(self, path: str, sha256: str, adapter_id: str) -> AdapterSwap:
        from taskmem_ros.adapters import AdapterError

        allowed = self.cfg.adapter.allowed_dir
        if path and allowed and not Path(path).resolve().is_relative_to(Path(allowed).resolve()):
            raise AdapterError(f"adapter path {path!r} is outside adapter.allowed_dir={allowed!r}")
        with self._batch_lock:
            previous, active = self.policy.load_adapter(path, sha256)
            try:
                if adapter_id and (active is None or active.adapter_id != adapter_id):
                    got = active.adapter_id if active else ""
                    raise AdapterError(f"adapter_id={adapter_id!r} requested but {path!r} holds {got!r}")
                self.store.deactivate_adapters()
                if active is not None:
                    self.store.register_adapter(
                        active.adapter_id,
                        kind=active.kind,
                        base_model=active.base_model,
                        path=active.path,
                        sha256=active.sha256,
                        metrics=dict(active.extra.get("metrics", {})) if isinstance(active.extra, dict) else {},
                        active=True,
                    )
            except Exception as exc:
                self.policy.load_adapter(previous.path if previous else "", previous.sha256 if previous else "")
                if isinstance(exc, AdapterError):
                    raise
                raise AdapterError(f"adapter not recorded in the store, rolled back: {exc}") from exc
            self.stats["adapter_swaps"] += 1
            log.info("adapter %r -> %r", previous.adapter_id if previous else "", active.adapter_id if active else "")
            return AdapterSwap(previous, active)

    def all_stats(self) -> dict[str, int]:
        with self._cv:
            merged = {**self._segmenter.stats, **self.speech.stats, **getattr(self.policy, "stats", {}), **self.stats}
            merged["clips_pending"] = len(self._pending)
        return dict(merged)

"""Decoding of benchmark media (PyAV): one place that turns dataset files into stream items.

Every benchmark video reaches the memory loop through :func:`read_segment`, so the three
datasets share one notion of time and one failure policy:

* **Clock.** An item's stamp is ``seg.start_ns + file time`` where file time is the frame's
  presentation time (minus the container's start offset when that is positive, e.g. MPEG-TS),
  so a file's first frame lands on ``seg.start_ns``. Samples before file time 0 (AAC priming)
  are discarded.
* **Window.** Only items on the stream clock within ``[max(0, start_ns), start_ns + duration_ns]``
  are yielded (no upper bound when ``duration_ns`` is 0). Stream time < 0 is "before the stream
  begins". This is how a *part* of a long file is used as a stream: EgoTempo places a full Ego4D
  video at ``start_ns = -clip_start`` with ``duration_ns = clip_end`` so stream time 0 is the
  clip start and reading stops at the clip end; the reader seeks to the clip start instead of
  decoding the minutes before it, and stops demuxing once every stream has passed the end.
* **Cost.** Frames are decoded (codecs need every reference frame) but only ~2x ``keyframe_fps``
  of them are yielded, and pixels are converted to RGB only when the consumer calls the frame's
  ``decode(max_pixels)`` (the segmenter does so for the few frames it keeps as keyframes).
* **Failures.** A file that cannot be opened raises :class:`MediaError` when :func:`read_segment`
  is called. Once open, a corrupt or truncated file yields what decodes and then ends; problems
  are counted in :attr:`SegmentReader.stats` and logged, never raised mid-iteration (a benchmark
  run must survive one bad download).
"""

from __future__ import annotations

import heapq
import html
import logging
import re
from collections.abc import Callable, Generator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from taskmem_ros.errors import MediaError
from taskmem_ros.evaluation.types import NS_PER_S, MediaSegment
from taskmem_ros.streams.image_codec import target_size
from taskmem_ros.types import AudioBlock, TranscriptSegment

log = logging.getLogger(__name__)

_MAX_DECODE_ERRORS = 100  # past this many bad packets a file is garbage; stop instead of spinning
_ORDER_LAG_NS = 10 * NS_PER_S  # one track may run this far ahead before the other is given up on


def _open(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise MediaError("missing", path=p)
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"unreadable: {exc}", path=p) from exc
    if not any(s.type in ("video", "audio") for s in container.streams):
        container.close()
        raise MediaError("unreadable: no video or audio stream", path=p)
    return container


def probe_duration_ns(path: str | Path) -> int:
    """Duration of a media file in ns: container header, else stream headers, else the last
    packet's end found by demuxing (no decoding). Raises MediaError if none is readable."""
    container = _open(path)
    try:
        if container.duration and container.duration > 0:
            return int(container.duration) * 1000  # AV_TIME_BASE is microseconds
        ends = [
            int(s.duration * s.time_base * NS_PER_S)
            for s in container.streams
            if s.duration and s.time_base and s.type in ("video", "audio")
        ]
        if ends and max(ends) > 0:
            return max(ends)
        end = Fraction(0)
        try:
            for pk in container.demux():
                if pk.pts is not None and pk.time_base:
                    end = max(end, (pk.pts + (pk.duration or 0)) * pk.time_base)
        except (av.FFmpegError, OSError) as exc:
            log.warning("%s: demux stopped while probing duration: %s", path, exc)
        if end > 0:
            return int(end * NS_PER_S)
        raise MediaError("unreadable: no duration and no timestamped packets", path=path)
    finally:
        container.close()


def _frame_decoder(frame: Any) -> Callable[[int | None], np.ndarray]:
    """decode(max_pixels) -> RGB uint8, aspect kept; pixels are touched only when called."""

    def decode(max_pixels: int | None = None) -> np.ndarray:
        tw, th = target_size(frame.width, frame.height, max_pixels)
        try:
            if (tw, th) == (frame.width, frame.height):
                return frame.to_ndarray(format="rgb24")
            return frame.to_ndarray(format="rgb24", width=tw, height=th, interpolation="AREA")
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"frame conversion failed: {exc}", path="<frame>") from exc

    return decode


class SegmentReader(Iterator[tuple[str, Any]]):
    """Iterates ``("frame", (stamp_ns, decode))`` and ``("audio", AudioBlock)`` in stream-time
    order. Opened eagerly (MediaError at construction); closes itself when exhausted."""

    def __init__(
        self, seg: MediaSegment, *, keyframe_fps: float, audio_rate: int = 16000, block_s: float = 0.5
    ) -> None:
        if keyframe_fps <= 0 or audio_rate <= 0 or block_s <= 0:
            raise ValueError("keyframe_fps, audio_rate and block_s must be > 0")
        self.seg = seg
        self.stats: dict[str, int] = {
            "frames_decoded": 0,
            "frames_yielded": 0,
            "audio_blocks": 0,
            "decode_errors": 0,
            "read_errors": 0,
            "out_of_order_dropped": 0,
        }
        self.errors: list[str] = []
        self._slot_ns = max(1, int(NS_PER_S / (2.0 * keyframe_fps)))
        self._rate = int(audio_rate)
        self._block_n = max(1, round(block_s * audio_rate))
        self._container = _open(seg.path)
        self._lo = max(0, seg.start_ns)
        self._hi = seg.start_ns + seg.duration_ns if seg.duration_ns > 0 else None
        self._gen = self._run()

    def __next__(self) -> tuple[str, Any]:
        return next(self._gen)

    def __iter__(self) -> SegmentReader:
        return self

    def close(self) -> None:
        self._gen.close()
        self._container.close()

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _error(self, key: str, msg: str) -> None:
        self.stats[key] += 1
        if len(self.errors) < 20:
            self.errors.append(msg)

    def _run(self) -> Generator[tuple[str, Any], None, None]:
        c = self._container
        try:
            vs = next((s for s in c.streams.video), None)
            as_ = next((s for s in c.streams.audio), None) if self.seg.use_audio else None
            streams = [s for s in (vs, as_) if s is not None]
            if not streams:
                return
            offset_ns = int(c.start_time) * 1000 if c.start_time and c.start_time > 0 else 0
            if vs is not None:
                vs.thread_type = "AUTO"
            skip_ns = self._lo - self.seg.start_ns  # file time where the window opens
            if skip_ns > 0:
                try:
                    c.seek((skip_ns + offset_ns) // 1000, backward=True, any_frame=False)
                except (av.FFmpegError, OSError, ValueError) as exc:  # decode from the start instead
                    msg = "%s: seek to %.1f s failed (%s); decoding from the start"
                    log.warning(msg, self.seg.path, skip_ns / NS_PER_S, exc)
            yield from self._demux(vs, as_, streams, offset_ns)
        finally:
            c.close()
            if self.stats["decode_errors"] or self.stats["read_errors"]:
                problems = {k: v for k, v in self.stats.items() if v}
                log.warning(
                    "%s: media problems %s; used what decoded (%s)", self.seg.path, problems, "; ".join(self.errors[:3])
                )

    def _demux(self, vs: Any, as_: Any, streams: list[Any], offset_ns: int) -> Iterator[tuple[str, Any]]:
        start, lo, hi = self.seg.start_ns, self._lo, self._hi
        heap: list[tuple[int, int, str, Any]] = []
        seq = 0
        newest = lo  # latest stamp pushed
        last_out = -(2**62)
        video_last = lo if vs is not None else None  # stamp every future video frame is >= to
        video_done, audio_done = vs is None, as_ is None
        last_slot = None
        audio = _AudioBlocker(self._rate, self._block_n) if as_ is not None else None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=self._rate) if as_ is not None else None

        def push(stamp: int, kind: str, item: Any) -> None:
            nonlocal seq, newest
            heapq.heappush(heap, (stamp, seq, kind, item))
            seq += 1
            newest = max(newest, stamp)

        def add_audio(frames: list[Any]) -> None:
            nonlocal audio_done
            assert audio is not None
            for o in frames:
                if o.pts is None or not o.samples:
                    continue
                s = np.asarray(o.to_ndarray(), dtype=np.float32).reshape(-1)
                t0 = start + int(Fraction(o.pts, self._rate) * NS_PER_S) - offset_ns
                k = -((t0 - lo) * self._rate // NS_PER_S) if t0 < lo else 0  # samples before the window
                s, t0 = s[k:], t0 + (k * NS_PER_S) // self._rate
                if hi is not None and t0 + len(s) * NS_PER_S // self._rate > hi:
                    s = s[: max(0, (hi - t0) * self._rate // NS_PER_S)]
                    audio_done = True
                for block in audio.add(t0, s):
                    push(block.stamp_ns, "audio", block)

        def watermark() -> int | None:
            marks = []
            if not video_done and video_last is not None:
                marks.append(video_last)
            if not audio_done and audio is not None:
                marks.append(audio.next_stamp if audio.next_stamp is not None else lo)
            return min(marks) if marks else None

        def drain(final: bool) -> Iterator[tuple[str, Any]]:
            nonlocal last_out
            mark = watermark()
            while heap and (final or mark is None or heap[0][0] <= mark or heap[0][0] < newest - _ORDER_LAG_NS):
                stamp, _, kind, item = heapq.heappop(heap)
                if stamp < last_out:
                    self.stats["out_of_order_dropped"] += 1
                    continue
                last_out = stamp
                if kind == "frame":
                    self.stats["frames_yielded"] += 1
                else:
                    self.stats["audio_blocks"] += 1
                yield kind, item

        try:
            for packet in self._container.demux(*streams):
                if video_done and audio_done:
                    break
                is_video = vs is not None and packet.stream.index == vs.index
                if (is_video and video_done) or (not is_video and audio_done):
                    continue
                try:
                    frames = packet.decode()
                except (av.FFmpegError, ValueError) as exc:
                    self._error("decode_errors", f"{packet.stream.type} packet at pts {packet.pts}: {exc}")
                    if self.stats["decode_errors"] > _MAX_DECODE_ERRORS:
                        break
                    continue
                if is_video:
                    for fr in frames:
                        self.stats["frames_decoded"] += 1
                        if fr.pts is None:
                            continue
                        stamp = start + int(fr.pts * vs.time_base * NS_PER_S) - offset_ns
                        if stamp < lo:  # lo >= start: also drops frames before file time 0
                            continue
                        if hi is not None and stamp > hi:
                            video_done = True
                            break
                        video_last = stamp if video_last is None else max(video_last, stamp)
                        slot = stamp // self._slot_ns
                        if slot != last_slot:
                            last_slot = slot
                            push(stamp, "frame", (stamp, _frame_decoder(fr)))
                else:
                    assert resampler is not None
                    try:
                        add_audio([o for fr in frames for o in resampler.resample(fr)])
                    except (av.FFmpegError, ValueError) as exc:
                        self._error("decode_errors", f"audio resample: {exc}")
                yield from drain(False)
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            self._error("read_errors", f"demux stopped: {exc}")
        if resampler is not None and not audio_done:
            try:
                add_audio(list(resampler.resample(None)))
            except (av.FFmpegError, ValueError) as exc:
                self._error("decode_errors", f"audio resample flush: {exc}")
        if audio is not None:
            tail = audio.flush()
            if tail is not None:
                push(tail.stamp_ns, "audio", tail)
        yield from drain(True)


class _AudioBlocker:
    """Cuts resampled audio into fixed blocks; a gap (or overlap) in timestamps starts a new block
    at the new stamp, so a block's samples are always contiguous in time."""

    def __init__(self, rate: int, block_n: int) -> None:
        self.rate, self.block_n = rate, block_n
        self._buf: list[np.ndarray] = []
        self._n = 0
        self._t0: int | None = None

    @property
    def next_stamp(self) -> int | None:
        """Stamp of the next block out: every later block starts at or after it."""
        return self._t0

    def _end(self) -> int:
        assert self._t0 is not None
        return self._t0 + self._n * NS_PER_S // self.rate

    def add(self, t0: int, samples: np.ndarray) -> list[AudioBlock]:
        out: list[AudioBlock] = []
        if not len(samples):
            return out
        if self._t0 is not None and abs(t0 - self._end()) > 2 * NS_PER_S // self.rate + NS_PER_S // 100:
            tail = self.flush()
            if tail is not None:
                out.append(tail)
        if self._t0 is None:
            self._t0 = t0
        self._buf.append(samples)
        self._n += len(samples)
        if self._n >= self.block_n:
            data = np.concatenate(self._buf)
            full = (len(data) // self.block_n) * self.block_n
            for i in range(0, full, self.block_n):
                stamp = self._t0 + i * NS_PER_S // self.rate
                out.append(AudioBlock(stamp_ns=stamp, samples=data[i : i + self.block_n].copy(), rate=self.rate))
            self._t0 = self._t0 + full * NS_PER_S // self.rate
            rest = data[full:]
            self._buf, self._n = ([rest] if len(rest) else []), len(rest)
        return out

    def flush(self) -> AudioBlock | None:
        if self._t0 is None or not self._n:
            return None
        block = AudioBlock(stamp_ns=self._t0, samples=np.concatenate(self._buf).astype(np.float32), rate=self.rate)
        self._buf, self._n, self._t0 = [], 0, None
        return block


def read_segment(
    seg: MediaSegment, *, keyframe_fps: float, audio_rate: int = 16000, block_s: float = 0.5
) -> SegmentReader:
    """Stream items of one media segment (see the module docstring for clock, window, failures).

    Yields ``("frame", (stamp_ns, decode))`` with ``decode(max_pixels | None) -> RGB uint8`` and,
    when ``seg.use_audio`` and the file has audio, ``("audio", AudioBlock)`` of mono float32 at
    ``audio_rate`` in ``block_s`` blocks. Raises MediaError now if the file cannot be opened."""
    return SegmentReader(seg, keyframe_fps=keyframe_fps, audio_rate=audio_rate, block_s=block_s)


# -- subtitles ---------------------------------------------------------------------------------
_TIME = r"(\d+):(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_CUE_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-ish tags (<font ...>, <i>) and ASS overrides ({\an8})


def _ts_ns(h: str, m: str, s: str, frac: str | None) -> int:
    ms = int((frac or "0").ljust(3, "0"))
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * NS_PER_S + ms * 1_000_000


def _clean(lines: list[str]) -> str:
    text = " ".join(_TAG.sub("", ln).strip() for ln in lines)
    return " ".join(html.unescape(text).split())


def read_srt(path: str | Path) -> list[TranscriptSegment]:
    """Cues of an SRT file as transcript segments (file time), sorted by start.

    Tags (VideoMME wraps lines in ``<font color=...>``) are stripped, entities unescaped,
    multi-line cues joined; BOM and CRLF tolerated. A cue without a valid timing line, with
    end < start or with no text left is skipped. An unreadable file gives [] and a warning:
    subtitles are a bonus transcript, never a reason to stop a run."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        log.warning("subtitles %s unreadable: %s", path, exc)
        return []
    content = raw.decode("utf-8-sig", errors="replace")
    out: list[TranscriptSegment] = []
    cue: tuple[int, int] | None = None
    text: list[str] = []
    skipped = 0

    def close() -> None:
        nonlocal cue, text, skipped
        if cue is not None:
            body = _clean(text)
            if body and cue[1] >= cue[0]:
                out.append(TranscriptSegment(start_ns=cue[0], end_ns=cue[1], text=body))
            else:
                skipped += 1
        cue, text = None, []

    for line in content.splitlines():
        m = _CUE_TIMING.match(line)
        if m:
            if text and text[-1].strip().isdigit():
                text.pop()  # the next cue's index, when the blank line before it is missing
            close()
            g = m.groups()
            cue = (_ts_ns(*g[:4]), _ts_ns(*g[4:]))
        elif not line.strip():
            close()
        elif cue is not None:
            text.append(line)
    close()
    if skipped:
        log.debug("%s: %d subtitle cue(s) skipped", path, skipped)
    out.sort(key=lambda s: (s.start_ns, s.end_ns))
    return out

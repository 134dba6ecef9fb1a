"""evaluation.media on real files written with PyAV: clock, order, thinning, lazy decode,
windowed reads, damaged files, SRT parsing."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mp4_fixtures import write_mp4

from taskmem_ros.errors import MediaError
from taskmem_ros.evaluation.media import probe_duration_ns, read_segment, read_srt
from taskmem_ros.evaluation.types import NS_PER_S, MediaSegment
from taskmem_ros.types import AudioBlock

S = NS_PER_S


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("media")
    write_mp4(d / "four.mp4", 4.0)
    write_mp4(d / "long.mp4", 12.0)
    write_mp4(d / "silent.mp4", 2.0, audio=False)
    write_mp4(d / "tail_moov.mp4", 3.0, faststart=False)
    return d


def _stamp(kind: str, item: Any) -> int:
    return int(item[0] if kind == "frame" else item.stamp_ns)


def _read(seg: MediaSegment, **kw: Any) -> tuple[list[tuple[str, Any]], dict[str, int]]:
    reader = read_segment(seg, keyframe_fps=kw.pop("keyframe_fps", 1.0), **kw)
    items = list(reader)
    return items, reader.stats


def test_probe_duration(media_dir: Path) -> None:
    assert abs(probe_duration_ns(media_dir / "four.mp4") - 4 * S) < S // 10
    assert abs(probe_duration_ns(media_dir / "silent.mp4") - 2 * S) < S // 10


def test_frames_and_audio_in_stream_order_with_offset_stamps(media_dir: Path) -> None:
    seg = MediaSegment("s", media_dir / "four.mp4", start_ns=7 * S)
    items, stats = _read(seg)
    stamps = [_stamp(k, it) for k, it in items]
    assert stamps == sorted(stamps)
    frames = [it for k, it in items if k == "frame"]
    blocks = [it for k, it in items if k == "audio"]
    # 10 fps decoded, thinned to 2x keyframe_fps = one frame per 0.5 s slot
    assert stats["frames_decoded"] == 40 and len(frames) == 8 == stats["frames_yielded"]
    assert [f[0] for f in frames] == [7 * S + i * S // 2 for i in range(8)]
    assert all(isinstance(b, AudioBlock) and b.rate == 16000 and b.samples.dtype == np.float32 for b in blocks)
    assert all(b.samples.ndim == 1 for b in blocks)
    assert blocks[0].stamp_ns == 7 * S
    assert all(len(b.samples) == 8000 for b in blocks[:-1])  # block_s = 0.5
    for prev, nxt in itertools.pairwise(blocks):  # contiguous, no gaps or overlaps
        assert nxt.stamp_ns == prev.end_ns
    total = sum(len(b.samples) for b in blocks) / 16000
    assert 3.9 < total < 4.2
    assert 0.15 < float(np.sqrt(np.mean(blocks[2].samples ** 2))) < 0.3  # the 0.3-amplitude tone
    assert stats["decode_errors"] == stats["read_errors"] == 0


def test_audio_resampled_and_block_size(media_dir: Path) -> None:
    items, _ = _read(MediaSegment("s", media_dir / "four.mp4", start_ns=0), audio_rate=8000, block_s=0.25)
    blocks = [it for k, it in items if k == "audio"]
    assert all(b.rate == 8000 for b in blocks) and len(blocks[0].samples) == 2000
    assert 3.9 < sum(len(b.samples) for b in blocks) / 8000 < 4.2


def test_higher_keyframe_rate_yields_more_frames(media_dir: Path) -> None:
    items, _ = _read(MediaSegment("s", media_dir / "four.mp4", start_ns=0, use_audio=False), keyframe_fps=2.5)
    assert all(k == "frame" for k, _ in items)
    assert len(items) == 20  # 5 fps of the 10 fps file


def test_lazy_decode_and_downscale(media_dir: Path) -> None:
    items, _ = _read(MediaSegment("s", media_dir / "four.mp4", start_ns=0, use_audio=False))
    decoders = [it[1] for _, it in items]
    # decoded after the reader closed the file: frames own their data
    full = decoders[0](None)
    assert full.shape == (120, 160, 3) and full.dtype == np.uint8
    small = decoders[0](4800)
    assert small.shape == (60, 80, 3)  # aspect kept, <= max_pixels
    assert decoders[0](10**9).shape == (120, 160, 3)  # never upscaled
    red = [float(d(None)[:, :, 0].mean()) for d in decoders]
    assert red == sorted(red) and red[-1] - red[0] > 150  # the ramp: right frame behind each stamp


def test_no_audio_track_and_use_audio_false(media_dir: Path) -> None:
    items, _ = _read(MediaSegment("s", media_dir / "silent.mp4", start_ns=S))
    assert items and all(k == "frame" for k, _ in items)
    items, _ = _read(MediaSegment("s", media_dir / "four.mp4", start_ns=S, use_audio=False))
    assert all(k == "frame" for k, _ in items)


def test_window_negative_start_reads_part_of_file(media_dir: Path) -> None:
    """A file placed at start_ns=-5 s with duration 8 s: stream [0, 3 s] = file seconds 5..8."""
    seg = MediaSegment("clip", media_dir / "long.mp4", start_ns=-5 * S, duration_ns=8 * S)
    items, stats = _read(seg)
    stamps = [_stamp(k, it) for k, it in items]
    assert stamps == sorted(stamps) and stamps[0] == 0 and max(stamps) <= 3 * S
    frames = [it for k, it in items if k == "frame"]
    assert [f[0] for f in frames] == [i * S // 2 for i in range(7)]  # 0, 0.5, ..., 3.0
    # file second 5 of a 0..250 ramp over 12 s: red ~ 250*50/119
    assert abs(frames[0][1](None)[:, :, 0].mean() - 250 * 50 / 119) < 12
    blocks = [it for k, it in items if k == "audio"]
    assert blocks[0].stamp_ns == 0
    assert abs(sum(len(b.samples) for b in blocks) / 16000 - 3.0) < 0.01
    assert stats["frames_decoded"] < 120  # seeked and stopped, not the whole file


def test_truncated_file_yields_prefix_without_raising(media_dir: Path, tmp_path: Path) -> None:
    data = (media_dir / "long.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    reader = read_segment(MediaSegment("s", cut, start_ns=0), keyframe_fps=1.0)
    items = list(reader)
    stamps = [_stamp(k, it) for k, it in items]
    assert stamps == sorted(stamps)
    assert 2 * S < max(stamps) < 11 * S  # a prefix: some, not all of 12 s
    assert any(k == "frame" for k, _ in items) and any(k == "audio" for k, _ in items)
    assert reader.stats["decode_errors"] + reader.stats["read_errors"] >= 1 and reader.errors  # counted, not raised


def test_unreadable_files_raise_media_error_at_open(media_dir: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    no_index = tmp_path / "no_index.mp4"  # moov atom at the end, cut off
    data = (media_dir / "tail_moov.mp4").read_bytes()
    no_index.write_bytes(data[: len(data) // 2])
    for path in (garbage, no_index, tmp_path / "absent.mp4"):
        with pytest.raises(MediaError) as err:
            read_segment(MediaSegment("s", path, start_ns=0), keyframe_fps=1.0)
        assert err.value.path == path and str(path) in str(err.value)
        with pytest.raises(MediaError):
            probe_duration_ns(path)
    with pytest.raises(MediaError, match="missing"):
        probe_duration_ns(tmp_path / "absent.mp4")


def test_read_srt(tmp_path: Path) -> None:
    srt = (
        "\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\n"
        '<font color="#ffffff">Hello</font> <i>there</i>\r\n<font color=#fff>second line</font>\r\n\r\n'
        "2\r\n00:00:03,000 --> 00:00:04,000\r\nTom &amp; Jerry\r\n\r\n"
        "3\r\nnot a timing line\r\nlost text\r\n\r\n"
        "4\r\n00:00:05,000 --> 00:00:04,000\r\nends before it starts\r\n\r\n"
        "5\r\n00:00:06,000 --> 00:00:07,000\r\n<font color=#fff></font>\r\n\r\n"
        "6\r\n01:02:03.5 --> 01:02:04,250 X1:10 X2:20\r\n{\\an8}top text\r\n"
        "7\r\n01:02:05,000 --> 01:02:06,000\r\nno blank line before this cue\r\n"
    )
    path = tmp_path / "v.srt"
    path.write_bytes(srt.encode("utf-8"))
    segs = read_srt(path)
    assert [(s.start_ns, s.end_ns, s.text) for s in segs] == [
        (1 * S, 2 * S + S // 2, "Hello there second line"),
        (3 * S, 4 * S, "Tom & Jerry"),
        (3723 * S + S // 2, 3724 * S + S // 4, "top text"),
        (3725 * S, 3726 * S, "no blank line before this cue"),
    ]
    assert read_srt(tmp_path / "absent.srt") == []

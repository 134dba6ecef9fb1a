"""Clip segmentation: counts, lengths, overlap, keyframes, audio gaps, late/jumping stamps, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from taskmem_ros.config import SegmenterConfig
from taskmem_ros.streams import segmenter as segmod
from taskmem_ros.streams.segmenter import ClipSegmenter
from taskmem_ros.types import NS_PER_S, AudioBlock, Clip, VideoFrame

T0 = 1_700_000_000 * NS_PER_S  # a wall-clock stamp, as a live robot sends
S = NS_PER_S


def cfg(**kw) -> SegmenterConfig:
    return SegmenterConfig(vad="none", asr="none", **kw)


def frame(t_ns: int, value: int = 0, shape=(72, 128, 3)) -> VideoFrame:
    return VideoFrame(stamp_ns=t_ns, rgb=np.full(shape, value, np.uint8))


def feed(seg: ClipSegmenter, seconds: float, fps: int = 30, audio_block_s: float = 0.1, t0: int = T0) -> list[Clip]:
    """Interleaved camera + microphone input, popping clips as a node would."""
    clips: list[Clip] = []
    n_audio = int(16000 * audio_block_s)
    next_audio = t0
    for i in range(int(seconds * fps)):
        t = t0 + i * S // fps
        seg.push_frame(frame(t, value=i % 256))
        while next_audio <= t:
            k = (next_audio - t0) * 16000 // S
            seg.push_audio(AudioBlock(next_audio, np.full(n_audio, 0.25 + (k % 7) / 100, np.float32), 16000))
            next_audio += int(audio_block_s * S)
        clips += seg.pop_ready()
    return clips


def test_clip_count_lengths_keyframes_and_audio():
    seg = ClipSegmenter(cfg(), "robot")
    clips = feed(seg, 35)
    assert [c.index for c in clips] == [0, 1, 2]  # clip 3 (30-40 s) waits for the frontier to pass 42 s
    clips += seg.flush()
    assert [(c.start_ns - T0) / S for c in clips] == [0, 10, 20, 30]
    assert [c.duration_s for c in clips[:3]] == [10, 10, 10]
    assert 4.9 < clips[3].duration_s <= 5.0  # last clip is cut where the data stopped
    assert [len(c.keyframes) for c in clips] == [10, 10, 10, 5]  # keyframe_fps = 1
    for c in clips:
        assert all(c.start_ns <= kf.stamp_ns < c.end_ns for kf in c.keyframes)
        assert c.audio is not None and c.audio_rate == 16000 and c.stream == "robot"
        assert abs(c.audio.size - c.duration_s * 16000) <= 1
        assert float(c.audio.min()) >= 0.25  # contiguous input leaves no zero-filled holes
    assert seg.stats["frames_in"] == 35 * 30 and seg.stats["keyframes_kept"] == 35
    assert seg.stats["frames_skipped"] == 35 * 30 - 35 and seg.stats["clips_out"] == 4


def test_clip_is_emitted_only_after_the_lateness_window():
    seg = ClipSegmenter(cfg(max_lateness_seconds=2.0), "s")
    seg.push_frame(frame(T0))
    seg.push_frame(frame(T0 + 11 * S))
    assert seg.pop_ready() == []
    seg.push_frame(frame(T0 + 12 * S))
    (clip,) = seg.pop_ready()
    assert clip.end_ns == T0 + 10 * S


def test_overlapping_clips_share_keyframes_and_audio():
    seg = ClipSegmenter(cfg(clip_seconds=10, overlap_seconds=4), "s")
    clips = feed(seg, 30) + seg.flush()
    starts = [(c.start_ns - T0) / S for c in clips]
    assert starts == [0, 6, 12, 18, 24]
    a, b = clips[0], clips[1]
    shared_a = [kf.stamp_ns for kf in a.keyframes if kf.stamp_ns >= b.start_ns]
    shared_b = [kf.stamp_ns for kf in b.keyframes if kf.stamp_ns < a.end_ns]
    assert shared_a == shared_b and len(shared_a) == 4
    assert a.audio is not None and b.audio is not None
    np.testing.assert_array_equal(a.audio[6 * 16000 :], b.audio[: 4 * 16000])


def test_keyframes_are_downscaled_to_max_pixels_and_own_their_memory():
    seg = ClipSegmenter(cfg(max_pixels=160 * 90), "s")
    big = np.zeros((720, 1280, 3), np.uint8)
    seg.push_frame(VideoFrame(T0, big))
    (clip,) = seg.flush()
    kf = clip.keyframes[0].rgb
    assert kf.shape == (90, 160, 3) and kf.flags.owndata and not np.shares_memory(kf, big)


def test_lazy_push_decodes_only_keyframes():
    seg = ClipSegmenter(cfg(keyframe_fps=2.0), "s")
    calls: list[int] = []

    def decode(max_pixels: int) -> np.ndarray:
        calls.append(max_pixels)
        return np.zeros((36, 64, 3), np.uint8)

    wanted = 0
    for i in range(300):  # 10 s at 30 fps
        t = T0 + i * S // 30
        wanted += seg.wants_frame(t)
        seg.push_frame_lazy(t, decode)
    assert len(calls) == 20 == wanted
    assert calls[0] == seg.cfg.max_pixels
    assert seg.stats["frames_in"] == 300 and seg.stats["keyframes_kept"] == 20


def test_audio_gaps_are_zero_filled():
    seg = ClipSegmenter(cfg(), "s")
    seg.push_audio(AudioBlock(T0, np.full(32000, 0.5, np.float32), 16000))  # 0-2 s
    seg.push_audio(AudioBlock(T0 + 5 * S, np.full(32000, -0.5, np.float32), 16000))  # 5-7 s
    seg.push_frame(frame(T0 + 13 * S))
    assert seg.pop_ready() == []  # the microphone is only 6 s behind: clip 0 waits for it
    seg.push_frame(frame(T0 + 18 * S))  # now 11 s behind (> source_timeout 10 s): counted as silent
    (clip,) = seg.pop_ready()
    assert clip.audio is not None and clip.audio.size == 160000 and not clip.keyframes
    assert np.all(clip.audio[:32000] == 0.5)
    assert np.all(clip.audio[32000 : 5 * 16000] == 0.0)
    assert np.all(clip.audio[5 * 16000 : 7 * 16000] == -0.5)
    assert np.all(clip.audio[7 * 16000 :] == 0.0)


def test_sources_delivered_with_skew_lose_nothing():
    """Topics arrive independently: video running 6 s of stream ahead of audio (a loaded
    machine replaying at 5x) must not close clips under the audio, nor drop it as late."""
    seg = ClipSegmenter(cfg(), "s")
    lag = 60  # audio blocks (0.1 s each) arrive 6 s of stream after the frames of the same time
    clips: list[Clip] = []
    for i in range(250 + lag):  # 25 s at 10 fps
        if i < 250:
            seg.push_frame(frame(T0 + i * S // 10))
        if 0 <= i - lag < 250:
            seg.push_audio(AudioBlock(T0 + (i - lag) * S // 10, np.full(1600, 0.25, np.float32), 16000))
        clips += seg.pop_ready()
    clips += seg.flush()
    assert seg.stats["audio_dropped"] == 0
    assert [c.start_ns - T0 for c in clips] == [0, 10 * S, 20 * S]
    assert all(np.all(c.audio == 0.25) for c in clips)  # every clip's audio complete, no zero gaps


def test_audio_at_another_rate_is_resampled():
    seg = ClipSegmenter(cfg(), "s")
    seg.push_audio(AudioBlock(T0, np.full(48000, 0.3, np.float32), 48000))  # 1 s at 48 kHz
    (clip,) = seg.flush()
    assert clip.audio is not None and abs(clip.audio.size - 16000) <= 1
    assert abs(float(clip.audio[4000:12000].mean()) - 0.3) < 1e-3


def test_frames_older_than_the_lateness_window_are_dropped_and_counted():
    seg = ClipSegmenter(cfg(max_lateness_seconds=2.0), "s")
    for i in range(15):
        seg.push_frame(frame(T0 + i * S))
    (first,) = seg.pop_ready()  # clip 0 closed: frontier 14 s >= 10 + 2
    assert seg.push_frame(frame(T0 + 5 * S)) is False  # belongs to a clip already handed on
    assert seg.stats["frames_dropped_late"] == 1
    seg.push_frame(frame(T0 + 16 * S))
    seg.push_frame(frame(T0 + 15 * S + S // 2))  # late, but inside the window of the open clip
    assert seg.stats["frames_dropped_late"] == 1
    seg.push_frame(frame(T0 + 9 * S))  # before the open clip (10 s) and its window is gone
    assert seg.stats["frames_dropped_late"] == 2
    assert not seg.wants_frame(T0 + 9 * S) and seg.wants_frame(T0 + 17 * S)
    (second,) = seg.flush()
    assert [(kf.stamp_ns - T0) / S for kf in second.keyframes] == [10, 11, 12, 13, 14, 15.5, 16]
    assert first.keyframes[-1].stamp_ns == T0 + 9 * S


def test_late_frame_within_lateness_lands_in_its_own_clip():
    seg = ClipSegmenter(cfg(max_lateness_seconds=2.0), "s")
    seg.push_frame(frame(T0))
    seg.push_frame(frame(T0 + 11 * S))
    seg.push_frame(frame(T0 + 9 * S + S // 2))  # reordered by the network, 1.5 s late
    seg.push_frame(frame(T0 + 12 * S))
    (clip,) = seg.pop_ready()
    assert [kf.stamp_ns - T0 for kf in clip.keyframes] == [0, 9 * S + S // 2]
    assert seg.stats["frames_dropped_late"] == 0


def test_late_audio_is_dropped_and_counted():
    seg = ClipSegmenter(cfg(), "s")
    for i in range(14):
        seg.push_frame(frame(T0 + i * S))
    seg.pop_ready()
    seg.push_audio(AudioBlock(T0 + 3 * S, np.ones(1600, np.float32), 16000))
    assert seg.stats["audio_dropped_late"] == 1 and seg.stats["audio_dropped"] == 1


def test_non_finite_and_invalid_input_is_counted_not_raised():
    seg = ClipSegmenter(cfg(), "s")
    seg.push_audio(AudioBlock(T0, np.array([0.1, np.nan], np.float32), 16000))
    seg.push_audio(AudioBlock(0, np.ones(10, np.float32), 16000))
    seg.push_frame(VideoFrame(T0, np.zeros((10, 10), np.uint8)))  # not RGB
    seg.push_frame(VideoFrame(0, np.zeros((10, 10, 3), np.uint8)))  # unset stamp
    assert seg.stats["audio_dropped_nonfinite"] == 1 and seg.stats["audio_dropped_invalid"] == 1
    assert seg.stats["audio_dropped"] == 2 and seg.stats["frames_dropped_invalid"] == 2
    assert seg.flush() == []


@pytest.mark.parametrize("jump_s", [3600, -3600])
def test_big_stamp_jump_closes_the_clip_and_restarts(jump_s):
    seg = ClipSegmenter(cfg(restart_gap_seconds=30), "s")
    feed(seg, 5, fps=10)
    t1 = T0 + jump_s * S
    seg.push_frame(frame(t1))
    (cut,) = seg.pop_ready()
    assert cut.start_ns == T0 and cut.end_ns <= T0 + 5 * S and len(cut.keyframes) == 5
    assert seg.stats["restarts"] == 1 and seg.stats["frames_dropped_late"] == 0
    clips = feed(seg, 12, fps=10, t0=t1 + S // 10) + seg.flush()
    assert [c.index for c in clips] == [1, 2] and clips[0].start_ns == t1


def test_memory_stays_bounded_however_long_the_stream():
    seg = ClipSegmenter(cfg(clip_seconds=10, overlap_seconds=5), "s")
    peak_open = peak_keyframes = 0
    for i in range(20 * 60 * 10):  # 20 minutes at 10 fps, never popped
        seg.push_frame(frame(T0 + i * S // 10, shape=(8, 8, 3)))
        if i % 10 == 0:
            seg.push_audio(AudioBlock(T0 + i * S // 10, np.zeros(1600, np.float32), 16000))
        peak_open = max(peak_open, len(seg._open))
        peak_keyframes = max(peak_keyframes, sum(len(c.keyframes) for c in seg._open.values()))
    assert peak_open <= 4 and peak_keyframes <= 40
    assert len(seg._filled_slots) <= 20
    assert len(seg.pop_ready()) == segmod.MAX_READY
    assert seg.stats["clips_dropped_unpopped"] > 0


def test_one_huge_audio_block_does_not_open_unbounded_clips():
    seg = ClipSegmenter(cfg(), "s")
    seg.push_audio(AudioBlock(T0, np.zeros(16000 * 25, np.float32), 16000))  # 25 s in one message
    clips = seg.pop_ready() + seg.flush()
    assert [c.audio.size for c in clips if c.audio is not None] == [160000, 160000, 80000]


def test_same_input_gives_the_same_clips():
    def run() -> list[Clip]:
        seg = ClipSegmenter(cfg(overlap_seconds=3), "s")
        return feed(seg, 27, fps=15) + seg.flush()

    a, b = run(), run()
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert (x.index, x.start_ns, x.end_ns) == (y.index, y.start_ns, y.end_ns)
        assert [k.stamp_ns for k in x.keyframes] == [k.stamp_ns for k in y.keyframes]
        np.testing.assert_array_equal(x.audio, y.audio)

"""Record real media into sqlite3 and MCAP bags and check everything comes back bit-exact."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from taskmem_ros.bags import BagError, ReadStats, bag_info, iter_bag
from taskmem_ros.bags.record_video import DEFAULT_START_NS, main, record_video
from taskmem_ros.bags.typestore import AUDIO_CHUNK_MSGTYPE, COMPRESSED_IMAGE_MSGTYPE, IMAGE_MSGTYPE

NS = 1_000_000_000
N_FRAMES = 6  # frames per session bag (conftest.N_FRAMES)
STORAGES = ("sqlite3", "mcap")


def _by_topic(bag):
    out: dict[str, list] = {}
    for m in iter_bag(bag):
        out.setdefault(m.topic, []).append(m)
    return out


@pytest.mark.parametrize("storage", STORAGES)
def test_counts_order_and_stamps(bags, storage):
    bag, summary = bags[storage]
    stats = ReadStats(str(bag))
    msgs = list(iter_bag(bag, stats=stats))
    assert stats.complete and stats.messages == len(msgs) == stats.expected
    assert summary.frames == N_FRAMES
    assert len(msgs) == summary.frames + summary.audio_chunks
    logs = [m.log_time_ns for m in msgs]
    assert logs == sorted(logs)
    assert all(m.stamp_ns == m.log_time_ns for m in msgs)  # recorder: log time == header stamp

    topics = _by_topic(bag)
    images = topics["/camera/image_raw"]
    assert [m.msgtype for m in images] == [IMAGE_MSGTYPE] * N_FRAMES
    fps = summary.source_fps
    assert [m.stamp_ns for m in images] == [DEFAULT_START_NS + round(i * NS / fps) for i in range(N_FRAMES)]
    audio = topics["/audio/audio"]
    assert all(m.msgtype == AUDIO_CHUNK_MSGTYPE for m in audio)
    stamps = [m.stamp_ns for m in audio]
    assert stamps[0] == DEFAULT_START_NS and all(b > a for a, b in itertools.pairwise(stamps))
    assert audio[-1].stamp_ns < summary.end_ns == DEFAULT_START_NS + round(N_FRAMES * NS / fps)

    info = bag_info(bag)
    assert info.storage == storage and info.complete
    assert info.topics == {"/camera/image_raw": IMAGE_MSGTYPE, "/audio/audio": AUDIO_CHUNK_MSGTYPE}
    assert info.counts["/camera/image_raw"] == N_FRAMES
    assert info.counts["/audio/audio"] == summary.audio_chunks
    assert info.start_ns == DEFAULT_START_NS and info.end_ns == max(logs)


@pytest.mark.parametrize("storage", STORAGES)
def test_image_bytes_round_trip_exactly(bags, storage, sample_video, source_frames):
    bag, _ = bags[storage]
    expected = source_frames(sample_video, N_FRAMES)
    images = list(iter_bag(bag, topics=["/camera/image_raw"]))
    assert len(images) == N_FRAMES
    for m, rgb in zip(images, expected, strict=True):
        msg = m.msg
        assert (msg.height, msg.width, msg.encoding, msg.step) == (rgb.shape[0], rgb.shape[1], "rgb8", rgb.shape[1] * 3)
        assert msg.is_bigendian == 0 and msg.header.frame_id == "camera"
        assert bytes(msg.data) == rgb.tobytes()


@pytest.mark.parametrize("storage", STORAGES)
def test_audio_samples_round_trip_exactly(bags, storage, speech_wav, wav_frames):
    bag, summary = bags[storage]
    raw, rate, channels = wav_frames(speech_wav)
    chunks = [m.msg for m in iter_bag(bag, topics=["/audio/audio"])]
    assert {(c.format, c.channels, c.rate) for c in chunks} == {("S16LE", channels, rate)}
    assert all(len(c.data) == 2 * round(rate * 0.1) for c in chunks[:-1])  # 100 ms chunks
    got = b"".join(bytes(c.data) for c in chunks)
    assert len(got) == 2 * channels * summary.audio_frames
    assert summary.audio_frames == round(N_FRAMES / summary.source_fps * rate)  # cut at video end
    assert got == raw[: len(got)]
    assert np.abs(np.frombuffer(got, "<i2")).max() > 1000  # real speech, not silence


@pytest.mark.parametrize("storage", STORAGES)
def test_compressed_variant(bags, storage, sample_video, source_frames):
    import cv2

    bag, _ = bags[f"{storage}-compressed"]
    images = list(iter_bag(bag, topics=["/camera/image_raw/compressed"]))
    assert len(images) == N_FRAMES and all(m.msgtype == COMPRESSED_IMAGE_MSGTYPE for m in images)
    for m, rgb in zip(images, source_frames(sample_video, N_FRAMES), strict=True):
        assert m.msg.format == "jpeg"
        bgr = cv2.imdecode(np.asarray(m.msg.data, np.uint8), cv2.IMREAD_COLOR)
        decoded = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        assert decoded.shape == rgb.shape
        assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 6  # JPEG q90


def test_converters_to_core_types(bags, sample_video, source_frames):
    from taskmem_ros.streams.messages import compressed_to_frame, image_to_frame, to_core

    expected = source_frames(sample_video, N_FRAMES)
    raw = [m for m in iter_bag(bags["mcap"][0]) if m.msgtype == IMAGE_MSGTYPE]
    frame = image_to_frame(raw[2].msg)
    assert frame.stamp_ns == raw[2].stamp_ns and frame.frame_id == "camera"
    np.testing.assert_array_equal(frame.rgb, expected[2])
    assert to_core(raw[0].msgtype, raw[0].msg).rgb.shape == expected[0].shape  # type: ignore[union-attr]

    comp = next(iter_bag(bags["sqlite3-compressed"][0], topics=["/camera/image_raw/compressed"]))
    cframe = compressed_to_frame(comp.msg)
    assert cframe.rgb.shape == expected[0].shape and cframe.rgb.dtype == np.uint8
    assert np.abs(cframe.rgb.astype(int) - expected[0].astype(int)).mean() < 6


def test_audio_converter(bags, speech_wav, wav_frames):
    from taskmem_ros.streams.messages import audio_to_block

    raw, rate, _ = wav_frames(speech_wav)
    m = next(iter_bag(bags["sqlite3"][0], topics=["/audio/audio"]))
    block = audio_to_block(m.msg)
    assert block.stamp_ns == m.stamp_ns and block.rate == rate
    want = np.frombuffer(raw, "<i2")[: len(block.samples)].astype(np.float32) / 32768.0
    np.testing.assert_allclose(block.samples, want, atol=1e-4)


def test_bgr8_fps_subsampling_and_f32_audio(tmp_path, sample_video, speech_wav, source_frames, wav_frames):
    s = record_video(
        sample_video,
        tmp_path / "b",
        audio_path=speech_wav,
        encoding="bgr8",
        fps=5.0,
        max_frames=3,
        audio_format="F32LE",
        audio_chunk_ms=50,
        start_ns=123,
        progress=False,
    )
    topics = _by_topic(tmp_path / "b")
    imgs = topics["/camera/image_raw"]
    step = round(s.source_fps / 5.0)
    assert [m.stamp_ns for m in imgs] == [123 + round(i * step * NS / s.source_fps) for i in range(3)]
    src = source_frames(sample_video, 2 * step + 1)
    assert imgs[0].msg.encoding == "bgr8"
    assert bytes(imgs[1].msg.data) == np.ascontiguousarray(src[step][:, :, ::-1]).tobytes()
    raw, _, _ = wav_frames(speech_wav)
    chunks = [m.msg for m in topics["/audio/audio"]]
    assert {c.format for c in chunks} == {"F32LE"}
    got = np.concatenate([np.frombuffer(bytes(c.data), "<f4") for c in chunks])
    want = np.frombuffer(raw, "<i2")[: len(got)].astype(np.float32) / 32768.0
    np.testing.assert_array_equal(got, want)


def test_stereo_any_rate_and_keep_audio_tail(tmp_path, sample_video, stereo_wav, wav_frames):
    s = record_video(
        sample_video,
        tmp_path / "b",
        audio_path=stereo_wav,
        max_frames=2,
        clip_audio_to_video=False,
        storage="mcap",
        progress=False,
    )
    raw, rate, channels = wav_frames(stereo_wav)
    assert (s.audio_rate, s.audio_channels) == (22050, 2) == (rate, channels)
    chunks = [m.msg for m in iter_bag(tmp_path / "b", topics=["/audio/audio"])]
    assert b"".join(bytes(c.data) for c in chunks) == raw  # whole 1 s kept, beyond the 0.2 s video
    assert s.end_ns - s.start_ns == NS


def test_recording_is_deterministic(tmp_path, sample_video, speech_wav):
    for name in ("a", "b"):
        record_video(sample_video, tmp_path / name, audio_path=speech_wav, max_frames=2, progress=False)
    a = [(m.topic, m.log_time_ns, m.rawdata) for m in iter_bag(tmp_path / "a")]
    b = [(m.topic, m.log_time_ns, m.rawdata) for m in iter_bag(tmp_path / "b")]
    assert a == b


def test_record_errors(tmp_path, sample_video):
    with pytest.raises(BagError, match="does not exist"):
        record_video(tmp_path / "nope.avi", tmp_path / "b", progress=False)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(BagError, match=r"junk\.avi"):
        record_video(junk, tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()
    with pytest.raises(BagError, match="cannot read WAV"):
        record_video(sample_video, tmp_path / "b", audio_path=junk, progress=False)
    record_video(sample_video, tmp_path / "b", max_frames=1, progress=False)
    with pytest.raises(BagError, match="already exists"):
        record_video(sample_video, tmp_path / "b", max_frames=1, progress=False)
    s = record_video(sample_video, tmp_path / "b", max_frames=2, overwrite=True, progress=False)
    assert s.frames == 2 and s.audio_topic is None
    with pytest.raises(ValueError, match="encoding"):
        record_video(sample_video, tmp_path / "c", encoding="yuv422", progress=False)  # type: ignore[arg-type]


def test_s32_audio(tmp_path, sample_video, stereo_wav, wav_frames):
    record_video(
        sample_video, tmp_path / "b", audio_path=stereo_wav, max_frames=1, audio_format="S32LE", progress=False
    )
    raw, _, _ = wav_frames(stereo_wav)
    chunks = [m.msg for m in iter_bag(tmp_path / "b", topics=["/audio/audio"])]
    got = np.concatenate([np.frombuffer(bytes(c.data), "<i4") for c in chunks])
    want = np.frombuffer(raw, "<i2")[: len(got)].astype(np.int32) << 16
    np.testing.assert_array_equal(got, want)


def test_cli(tmp_path, sample_video, speech_wav, capsys):
    bag = tmp_path / "cli_bag"
    argv = [str(sample_video), str(bag), "--audio", str(speech_wav), "--max-frames", "2", "--storage", "mcap"]
    assert main([*argv, "--compressed", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "frames: 2" in out and "/camera/image_raw/compressed" in out
    info = bag_info(bag)
    assert info.storage == "mcap" and info.counts["/camera/image_raw/compressed"] == 2
    assert main([*argv, "--no-progress"]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.avi"), str(tmp_path / "x"), "--no-progress"]) == 2
    with pytest.raises(SystemExit):
        main(["--storage", "tape"])

"""Malformed sensor messages on the live graph are counted drops; SIGKILL loses nothing committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from image_fixtures import corrupt_entropy, noise_jpeg
from test_graph_e2e import write_params

pytestmark = pytest.mark.ros
NS = 1_000_000_000


def _wait_until(pred, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_malformed_sensor_messages_are_counted_not_fatal(tmp_path: Path) -> None:
    from graph_client import GraphClient
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from taskmem_interfaces.msg import AudioChunk
    from taskmem_ros.nodes.bringup import Bringup

    params = write_params(tmp_path, tmp_path / "m.db", sensor_qos="reliable")  # volatile test publishers
    bringup = Bringup(["--ros-args", "--params-file", str(params)])
    bringup.activate()
    bringup.spin_in_background()
    client = GraphClient("bad_input_publisher")
    try:
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        img_pub = client.node.create_publisher(Image, "camera/image_raw", qos)
        cmp_pub = client.node.create_publisher(CompressedImage, "camera/image_raw/compressed", qos)
        aud_pub = client.node.create_publisher(AudioChunk, "audio/audio", qos)
        _wait_until(lambda: img_pub.get_subscription_count() and aud_pub.get_subscription_count(), 120, "discovery")
        time.sleep(0.5)

        def image(w: int, h: int, enc: str, step: int, nbytes: int, sec: int = 100) -> Image:
            msg = Image(width=w, height=h, encoding=enc, step=step)
            msg.header.stamp.sec = sec
            msg.data = bytes(nbytes)
            return msg

        bad_images = [
            image(64, 48, "rgb8", 64 * 3, 64 * 3 * 47),  # data shorter than height*step
            image(64, 48, "rgb8", 100, 100 * 48),  # step < width*3
            image(64, 48, "hsv_fancy", 64 * 3, 64 * 3 * 48),  # unknown encoding
            image(0, 0, "rgb8", 0, 0),  # zero-size image
        ]
        for msg in bad_images:
            img_pub.publish(msg)
        good = image(64, 48, "rgb8", 64 * 3 + 8, (64 * 3 + 8) * 48, sec=200)  # row padding is fine
        img_pub.publish(good)
        img_pub.publish(image(64, 48, "rgb8", 64 * 3, 64 * 3 * 48, sec=195))  # stamp going backwards (5 s)

        def audio(data: bytes, fmt: str = "F32LE", rate: int = 16000, channels: int = 1) -> AudioChunk:
            msg = AudioChunk(format=fmt, rate=rate, channels=channels)
            msg.header.stamp.sec = 200
            msg.data = data
            return msg

        aud_pub.publish(audio(np.array([0.1, np.nan, 0.2], "<f4").tobytes()))  # NaN samples
        aud_pub.publish(audio(np.array([np.inf] * 8, "<f4").tobytes()))  # inf samples
        aud_pub.publish(audio(b"\x00\x01\x02", "S16LE"))  # truncated (half a sample)
        aud_pub.publish(audio(bytes(320), "S16LE", rate=0))  # impossible rate
        aud_pub.publish(audio(bytes(320), "MP3"))  # unsupported format

        # corrupt JPEG on a compressed topic needs the compressed subscription: not enabled by default
        del cmp_pub

        def stats() -> dict:
            return client.trigger("/memorizer/get_stats")

        _wait_until(lambda: stats()["frames_rejected"] >= 4 and stats()["audio_rejected"] >= 5, 120, "drops")
        s = stats()
        assert s["frames_rejected"] == 4
        assert s["audio_rejected"] == 5
        assert s["frames_dropped_late"] == 1
        assert client.query("anything").success  # node still serving
    finally:
        client.close()
        bringup.shutdown()


@pytest.mark.parametrize("url", ["sqlite:////proc/taskmem/memory.db", "sqlite:///{tmp}/not_a_dir/memory.db"])
def test_unusable_database_path_fails_configure_clearly(tmp_path: Path, url: str) -> None:
    from taskmem_ros.nodes.bringup import Bringup

    (tmp_path / "not_a_dir").write_text("a file where a directory should be")
    params = write_params(tmp_path, tmp_path / "unused.db")
    text = params.read_text().replace(f"sqlite:///{tmp_path / 'unused.db'}", url.format(tmp=tmp_path))
    params.write_text(text)
    bringup = Bringup(["--ros-args", "--params-file", str(params)])
    try:
        with pytest.raises(RuntimeError, match="memorizer: configure failed"):
            bringup.activate()
    finally:
        bringup.shutdown()


def test_corrupt_jpeg_on_compressed_topic(tmp_path: Path) -> None:
    from graph_client import GraphClient
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    from taskmem_ros.nodes.bringup import Bringup

    params = write_params(
        tmp_path, tmp_path / "c.db", image_topic="", compressed_image_topic="cam/compressed", sensor_qos="reliable"
    )
    bringup = Bringup(["--ros-args", "--params-file", str(params)])
    bringup.activate()
    bringup.spin_in_background()
    client = GraphClient("jpeg_publisher")
    try:
        pub = client.node.create_publisher(
            CompressedImage, "cam/compressed", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        _wait_until(lambda: pub.get_subscription_count(), 120, "discovery")
        time.sleep(0.5)
        import cv2

        ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
        assert ok
        for data in (b"\xff\xd8\xff\xe0garbage", jpeg.tobytes()[:40], b""):
            msg = CompressedImage(format="jpeg")
            msg.header.stamp.sec = 10
            msg.data = data
            pub.publish(msg)

        def compressed(data: bytes, sec: int, nanosec: int = 0) -> CompressedImage:
            msg = CompressedImage(format="jpeg")
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            msg.data = data
            return msg

        pub.publish(compressed(jpeg.tobytes(), 11))  # the keyframe of second 11
        # between keyframes (never decoded): garbage and a truncated JPEG are still counted
        pub.publish(compressed(bytes(4000), 11, 300_000_000))
        pub.publish(compressed(jpeg.tobytes()[:-50], 11, 600_000_000))
        # the next keyframe slot: markers intact, entropy data damaged (OpenCV would keep it)
        pub.publish(compressed(corrupt_entropy(noise_jpeg()), 12))
        _wait_until(lambda: client.trigger("/memorizer/get_stats")["frames_rejected"] >= 6, 120, "drops")
        s = client.trigger("/memorizer/get_stats")
        assert s["frames_rejected"] == 6 and s["keyframes_kept"] == 1, s
        assert s["frames_rejected_not_an_image"] == 1 and s["frames_rejected_corrupt"] == 1, s
        assert s["frames_rejected_too_small"] == 2 and s["frames_rejected_empty"] == 1, s
        assert s["frames_rejected_truncated"] == 1, s
    finally:
        client.close()
        bringup.shutdown()


def test_sigkill_mid_stream_loses_no_committed_memory(tmp_path: Path, small_bag: tuple[Path, object]) -> None:
    """Every entry the memorizer published as written is in the store after kill -9."""
    from graph_client import GraphClient

    db = tmp_path / "kill.db"
    params = write_params(tmp_path, db, ingest={"max_pending_clips": 100, "drop_policy": "drop_newest"})
    # 2 s clips: several commits happen before the kill, and more are in flight when it lands
    text = params.read_text().replace("clip_seconds: 10.0", "clip_seconds: 2.0")
    params.write_text(text)
    log = open(tmp_path / "bringup.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskmem_ros.nodes.bringup", "--params", str(params)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    client = GraphClient("kill_observer")
    replayer = None
    try:
        _wait_until(lambda: "active" in (tmp_path / "bringup.log").read_text(), 120, "bringup")
        cmd = [sys.executable, "-m", "taskmem_ros.cli.replay", str(small_bag[0]), "--rate", "1", "--no-progress"]
        replayer = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until(lambda: len(client.entry_ids()) >= 3, 120, "first committed entries")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(1.0)  # entries published just before the kill are still in flight
        reported = set(client.entry_ids())
    finally:
        if replayer is not None:
            replayer.kill()
        client.close()
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore

    # Read through the store: one SQLite library per process (two copies break WAL locking).
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}")) as store:
        assert store.integrity_check() == "ok"
        first = {r.id: r.clip_id for r in store.timeline()}
        clips_first = store.clips()
    assert reported, "nothing was reported before the kill"
    assert reported <= set(first), f"lost committed entries: {sorted(reported - set(first))}"
    _second_run_appends(tmp_path, params, small_bag[0], db, first, clips_first)


def _second_run_appends(tmp_path: Path, params: Path, bag: Path, db: Path, first: dict, clips_first: list) -> None:
    """A reboot after the kill: a second run on the same store starts its clip count at 0
    again, yet appends; the first run's clips keep their windows and transcripts, and its
    entries still point at them. It runs on sim time with no /clock yet: "as of now" must be
    the latest stamp in memory (the first run's entries), not time 0."""
    from graph_client import GraphClient

    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore

    log_path = tmp_path / "bringup2.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskmem_ros.nodes.bringup", "--params", str(params), "--use-sim-time"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    client = GraphClient("second_run_observer")
    try:
        _wait_until(lambda: "active" in log_path.read_text(), 120, "second bringup")
        timeline = client.query("", max_results=1000)
        assert timeline.success and {e.id for e in timeline.entries} == set(first), timeline.message
        cmd = [sys.executable, "-m", "taskmem_ros.cli.replay", str(bag), "--rate", "2", "--no-progress"]
        replay = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert replay.returncode == 0, replay.stderr[-2000:]
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)
        log.close()
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}")) as store:
        clips = store.clips()
        entries = {r.id: r.clip_id for r in store.timeline()}
    assert clips[: len(clips_first)] == clips_first, "the second run overwrote the first run's clips"
    second = clips[len(clips_first) :]
    assert second and {c["run"] for c in second}.isdisjoint({c["run"] for c in clips_first})
    assert min(c["run_clip_index"] for c in second) == 0  # its segmenter restarted, yet nothing was replaced
    assert len({c["clip_index"] for c in clips}) == len(clips)
    assert all(entries[i] == clip for i, clip in first.items()), "first-run entries lost their clip"
    assert len(entries) > len(first)


def test_integer_for_a_float_parameter_is_accepted(tmp_path: Path) -> None:
    """``clip_seconds: 10`` (as the README writes the default) configures like ``10.0``."""
    from taskmem_ros.nodes.bringup import Bringup

    params = write_params(tmp_path, tmp_path / "m.db", segmenter={"clip_seconds": 10, "overlap_seconds": 0})
    bringup = Bringup(["--ros-args", "--params-file", str(params)])
    try:
        bringup.activate()
        cfg = bringup.memorizer._cfg  # what the node actually configured
        assert cfg.segmenter.clip_seconds == 10.0 and isinstance(cfg.segmenter.clip_seconds, float)
    finally:
        bringup.shutdown()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ten", "segmenter.clip_seconds='ten' must be a number"), (True, "segmenter.clip_seconds=True must be a number")],
)
def test_wrong_parameter_type_is_one_line_not_a_traceback(tmp_path: Path, value: object, expected: str) -> None:
    params = write_params(tmp_path, tmp_path / "m.db", segmenter={"clip_seconds": value})
    done = subprocess.run(
        [sys.executable, "-m", "taskmem_ros.nodes.bringup", "--params", str(params)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0 and expected in out, out[-3000:]
    assert "Traceback" not in out and "InvalidParameterTypeException" not in out

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
        _wait_until(lambda: img_pub.get_subscription_count() and aud_pub.get_subscription_count(), 20, "discovery")
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

        _wait_until(lambda: stats()["frames_rejected"] >= 4 and stats()["audio_rejected"] >= 5, 20, "drops")
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
        _wait_until(lambda: pub.get_subscription_count(), 20, "discovery")
        time.sleep(0.5)
        import cv2

        ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
        assert ok
        for data in (b"\xff\xd8\xff\xe0garbage", jpeg.tobytes()[:40], b""):
            msg = CompressedImage(format="jpeg")
            msg.header.stamp.sec = 10
            msg.data = data
            pub.publish(msg)
        good = CompressedImage(format="jpeg")
        good.header.stamp.sec = 11
        good.data = jpeg.tobytes()
        pub.publish(good)
        _wait_until(lambda: client.trigger("/memorizer/get_stats")["frames_rejected"] >= 3, 20, "drops")
        s = client.trigger("/memorizer/get_stats")
        assert s["frames_rejected"] == 3 and s["keyframes_kept"] == 1
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
        stored = {r.id for r in store.timeline()}
    assert reported, "nothing was reported before the kill"
    assert reported <= stored, f"lost committed entries: {sorted(reported - stored)}"

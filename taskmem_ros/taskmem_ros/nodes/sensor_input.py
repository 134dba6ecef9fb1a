"""The memorizer's sensor side: subscriptions by our topic conventions, decode, counted drops.

Camera input follows image_transport naming (``<base>`` raw, ``<base>/compressed``), audio is our
AudioChunk or audio_common's AudioStamped (``MemorizerParams.audio_format``). Callbacks only
decode and segment; the policy runs on the Memorizer's worker.
"""

from __future__ import annotations

import time
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from taskmem_interfaces.msg import AudioChunk
from taskmem_ros.diagnostics import MemorizerHealth
from taskmem_ros.memorizer import Memorizer
from taskmem_ros.node_config import MemorizerParams
from taskmem_ros.streams.audio import AudioDecodeError
from taskmem_ros.streams.image_codec import ImageDecodeError
from taskmem_ros.streams.messages import audio_to_block, compressed_source, count_rejection, image_source

SENSOR_QOS: dict[str, QoSProfile] = {
    "sensor_data": qos_profile_sensor_data,
    "reliable": QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE),
    # keep-all: a callback starved for a moment (GIL, busy CPU) must not have its unread
    # samples overwritten, or a replay silently loses the start of an utterance
    "replay": QoSProfile(
        depth=200,
        history=HistoryPolicy.KEEP_ALL,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    ),
}


class SensorInput:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.rejected: dict[str, int] = {"frames_rejected": 0, "audio_rejected": 0}
        self.last_input = 0.0
        self.received: dict[str, int] = {}  # messages taken per resolved topic (replay's flush handshake)
        self._subs: list[Any] = []
        self._group = MutuallyExclusiveCallbackGroup()  # keeps per-topic order
        self._memorizer: Memorizer | None = None
        self._health: MemorizerHealth | None = None
        self._audio_rate = 16000

    def subscribe(self, p: MemorizerParams, memorizer: Memorizer, health: MemorizerHealth) -> str:
        """Subscribe per ``p``; "" on success, else why not."""
        self._memorizer, self._health = memorizer, health
        self._audio_rate = memorizer.cfg.segmenter.audio_rate
        camera_cb = self._on_compressed if p.image_transport == "compressed" else self._on_image
        topics: list[tuple[str, Any, Any]] = [
            (p.camera_topic, CompressedImage if p.image_transport == "compressed" else Image, camera_cb),
            (p.compressed_image_topic, CompressedImage, self._on_compressed),
        ]
        if p.audio_format == "audio_common":
            try:
                from audio_common_msgs.msg import AudioStamped  # type: ignore[import-not-found]
            except ImportError:
                return "audio_format='audio_common' but audio_common_msgs is not installed"
            topics.append((p.audio_topic, AudioStamped, self._on_audio))
        else:
            topics.append((p.audio_topic, AudioChunk, self._on_audio))
        qos = SENSOR_QOS[p.sensor_qos]
        for topic, msg_type, cb in topics:
            if topic:
                name = self.node.resolve_topic_name(topic)
                self.received.setdefault(name, 0)
                counted = self._counting(name, cb)
                self._subs.append(
                    self.node.create_subscription(msg_type, topic, counted, qos, callback_group=self._group)
                )
        return ""

    def _counting(self, topic: str, cb: Any) -> Any:
        """Count every message taken, decodable or not: acknowledged by DDS is not yet taken
        from the queue, and a replay must not flush before the memorizer has its whole tail."""

        def counted(msg: Any) -> None:
            self.received[topic] += 1
            cb(msg)

        return counted

    @property
    def topics(self) -> list[str]:
        return [s.topic_name for s in self._subs]

    def unsubscribe(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []

    def release(self) -> None:
        self.unsubscribe()
        self._memorizer = self._health = None

    def wait_quiet(self, quiet_s: float, timeout_s: float) -> None:
        """Messages acknowledged by DDS may still sit in the subscription queues; let the
        callbacks drain them so a flush does not cut the stream's tail off."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and time.monotonic() - self.last_input < quiet_s:
            time.sleep(min(0.05, quiet_s))

    def _on_image(self, msg: Image) -> None:
        self._push_frame(image_source, msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._push_frame(compressed_source, msg)

    def _push_frame(self, source: Any, msg: Any) -> None:
        self.last_input = time.monotonic()
        mem, health = self._memorizer, self._health
        if mem is None or health is None:
            return
        health.frames.tick()
        try:
            mem.push_frame_lazy(*source(msg))
        except ImageDecodeError as exc:
            count_rejection(self.rejected, exc)
            self.node.get_logger().warning(f"dropped image ({exc.kind}): {exc}", throttle_duration_sec=5.0)

    def _on_audio(self, msg: Any) -> None:
        self.last_input = time.monotonic()
        mem, health = self._memorizer, self._health
        if mem is None or health is None:
            return
        health.audio.tick()
        try:
            block = audio_to_block(msg, self._audio_rate)
        except AudioDecodeError as exc:
            count_rejection(self.rejected, exc)
            self.node.get_logger().warning(f"dropped audio: {exc}", throttle_duration_sec=5.0)
            return
        mem.push_audio(block)

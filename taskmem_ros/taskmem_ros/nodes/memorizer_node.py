"""Memorizer lifecycle node: camera + microphone topics -> clips -> policy -> episodic store.

configure: open the store, load the policy; activate: subscribe and start the worker;
deactivate: unsubscribe and drain; cleanup: free the models and close the store.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from taskmem_interfaces.msg import AdapterInfo, AudioChunk, MemoryEntry
from taskmem_interfaces.srv import LoadAdapter
from taskmem_ros.adapters import AdapterError
from taskmem_ros.config import ConfigError
from taskmem_ros.llm.base import EngineError
from taskmem_ros.memorizer import Memorizer
from taskmem_ros.nodes.conversions import adapter_to_msg, record_to_msg
from taskmem_ros.nodes.lifecycle import LATCHED_QOS, run, schedule_autostart
from taskmem_ros.nodes.params import declare_config, read_config
from taskmem_ros.policy.base import make_policy
from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.streams.audio import AudioDecodeError
from taskmem_ros.streams.image_codec import ImageDecodeError
from taskmem_ros.streams.messages import audio_to_block, compressed_source, image_source
from taskmem_ros.types import MemoryRecord

NODE_PARAMS: dict[str, Any] = {
    "image_topic": "camera/image_raw",  # sensor_msgs/Image; "" disables
    "compressed_image_topic": "",  # sensor_msgs/CompressedImage (jpeg/png); "" disables
    "audio_topic": "audio/audio",  # taskmem_interfaces/AudioChunk; "" disables
    "audio_common_topic": "",  # audio_common_msgs/AudioStamped, when audio_common is installed
    "memory_topic": "memory/entries",
    "adapter_topic": "memory/adapter",  # AdapterInfo, latched: the adapter shaping new memories
    # "sensor_data": best effort (live robots); "reliable": reliable, volatile (lossless live topics);
    # "replay": reliable + transient-local, matching taskmem-replay, so evaluation never loses the start
    "sensor_qos": "sensor_data",
    "flush_timeout_s": 120.0,
    "flush_quiet_s": 0.5,  # flush waits until sensor input has been quiet this long (in-flight data first)
    "autostart": False,  # configure + activate on start (no lifecycle manager needed)
}


SENSOR_QOS: dict[str, QoSProfile] = {
    "sensor_data": qos_profile_sensor_data,
    "reliable": QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE),
    "replay": QoSProfile(
        depth=200, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    ),
}


class MemorizerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("memorizer", **kwargs)
        declare_config(self, NODE_PARAMS)
        self._memorizer: Memorizer | None = None
        self._store: EpisodicStore | None = None
        self._subs: list[Any] = []
        self._pub: Any = None
        self._adapter_pub: Any = None
        self._services: list[Any] = []
        self._sensor_group = MutuallyExclusiveCallbackGroup()  # keeps per-topic order
        self._service_group = ReentrantCallbackGroup()
        self.rejected: dict[str, int] = {"frames_rejected": 0, "audio_rejected": 0}
        self._last_input = 0.0
        schedule_autostart(self)

    # -- lifecycle ----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg, self._extra = read_config(self, NODE_PARAMS)
            self._store = EpisodicStore(cfg.store)
            self._store.open()
            policy = make_policy(cfg)
        except (ConfigError, StoreError, ImportError, ValueError, EngineError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            if self._store is not None:
                self._store.close()
                self._store = None
            return TransitionCallbackReturn.FAILURE
        self._cfg = cfg
        self._pub = self.create_lifecycle_publisher(MemoryEntry, self._extra["memory_topic"], 100)
        self._memorizer = Memorizer(cfg, self._store, policy, on_committed=self._publish)
        self._adapter_pub = self.create_publisher(AdapterInfo, self._extra["adapter_topic"], LATCHED_QOS)
        if cfg.adapter.path:
            try:
                swap = self._memorizer.load_adapter(cfg.adapter.path, cfg.adapter.sha256)
                self.get_logger().info(f"adapter {swap.active.adapter_id!r} loaded from {cfg.adapter.path}")
            except AdapterError as exc:  # memory keeps working on the base model
                self.get_logger().error(f"adapter.path={cfg.adapter.path!r} not loaded, using the base model: {exc}")
        self._adapter_pub.publish(
            adapter_to_msg(self._memorizer.policy.active_adapter, active=True, stamp_ns=time.time_ns())
        )
        self._services = [
            self.create_service(Trigger, "~/flush", self._on_flush, callback_group=self._service_group),
            self.create_service(Trigger, "~/get_stats", self._on_stats, callback_group=self._service_group),
            self.create_service(
                LoadAdapter, "~/load_adapter", self._on_load_adapter, callback_group=self._service_group
            ),
        ]
        self.get_logger().info(f"configured: stream={cfg.stream!r} store={cfg.store.url} policy={policy.model_id}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._memorizer is not None
        qos = SENSOR_QOS.get(self._extra["sensor_qos"])
        if qos is None:
            self.get_logger().error(f"sensor_qos={self._extra['sensor_qos']!r}; expected one of {sorted(SENSOR_QOS)}")
            return TransitionCallbackReturn.FAILURE
        topics = [
            ("image_topic", Image, self._on_image),
            ("compressed_image_topic", CompressedImage, self._on_compressed),
            ("audio_topic", AudioChunk, self._on_audio),
        ]
        audio_common = self._extra["audio_common_topic"]
        if audio_common:
            try:
                from audio_common_msgs.msg import AudioStamped  # type: ignore[import-not-found]

                topics.append(("audio_common_topic", AudioStamped, self._on_audio))
            except ImportError:
                self.get_logger().warning("audio_common_topic set but audio_common_msgs is not installed; ignored")
        for param, msg_type, cb in topics:
            topic = self._extra[param]
            if topic:
                self._subs.append(self.create_subscription(msg_type, topic, cb, qos, callback_group=self._sensor_group))
        self._memorizer.start()
        self.get_logger().info(f"active: listening on {[s.topic_name for s in self._subs]}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._memorizer is not None:
            self._memorizer.stop(drain=True, timeout_s=float(self._extra["flush_timeout_s"]))
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._memorizer is not None:
            self._memorizer.stop(drain=True, timeout_s=float(self._extra["flush_timeout_s"]))
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for srv in self._services:
            self.destroy_service(srv)
        self._services = []
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
            self._pub = None
        if self._adapter_pub is not None:
            self.destroy_publisher(self._adapter_pub)
            self._adapter_pub = None
        if self._memorizer is not None:
            self._memorizer.policy.close()
            self._memorizer = None
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- sensor callbacks: decode + segment only; the policy runs on the worker ------------
    def _on_image(self, msg: Image) -> None:
        self._push_frame(image_source, msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._push_frame(compressed_source, msg)

    def _push_frame(self, source: Any, msg: Any) -> None:
        self._last_input = time.monotonic()
        if self._memorizer is None:
            return
        try:
            self._memorizer.push_frame_lazy(*source(msg))
        except ImageDecodeError as exc:
            self.rejected["frames_rejected"] += 1
            self.get_logger().warning(f"dropped image: {exc}", throttle_duration_sec=5.0)

    def _on_audio(self, msg: Any) -> None:
        self._last_input = time.monotonic()
        if self._memorizer is None:
            return
        try:
            block = audio_to_block(msg, self._cfg.segmenter.audio_rate)
        except AudioDecodeError as exc:
            self.rejected["audio_rejected"] += 1
            self.get_logger().warning(f"dropped audio: {exc}", throttle_duration_sec=5.0)
            return
        self._memorizer.push_audio(block)

    def _publish(self, records: list[MemoryRecord]) -> None:
        if self._pub is not None:
            for rec in records:
                self._pub.publish(record_to_msg(rec))

    # -- services -------------------------------------------------------------------------
    def _on_flush(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Close the open clip and wait for the backlog (end of a bag, before evaluation)."""
        if self._memorizer is None:
            response.success, response.message = False, "not configured"
            return response
        self._wait_for_quiet_input(float(self._extra["flush_quiet_s"]), float(self._extra["flush_timeout_s"]))
        response.success = self._memorizer.flush(float(self._extra["flush_timeout_s"]))
        response.message = json.dumps(self.stats())
        return response

    def _wait_for_quiet_input(self, quiet_s: float, timeout_s: float) -> None:
        """Messages acknowledged by DDS may still sit in the subscription queues; let the
        sensor callbacks drain them so the flush does not cut the stream's tail off."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and time.monotonic() - self._last_input < quiet_s:
            time.sleep(min(0.05, quiet_s))

    def _on_load_adapter(self, request: LoadAdapter.Request, response: LoadAdapter.Response) -> LoadAdapter.Response:
        """Verify (checksum, base model, layer) and swap between batches; on any failure the
        previous adapter stays active and the reply says why."""
        if self._memorizer is None:
            response.success, response.message = False, "not configured"
            return response
        before = self._memorizer.policy.active_adapter
        now = time.time_ns()
        try:
            swap = self._memorizer.load_adapter(request.path, request.sha256, request.adapter_id)
        except AdapterError as exc:
            self.get_logger().error(f"LoadAdapter {request.path!r} refused, kept previous adapter: {exc}")
            response.success, response.message = False, str(exc)
            response.previous = adapter_to_msg(before, active=True, stamp_ns=now)
            response.active = adapter_to_msg(before, active=True, stamp_ns=now)
            return response
        response.success = True
        active_id = swap.active.adapter_id if swap.active else "(base model)"
        response.message = f"active adapter: {active_id}"
        response.previous = adapter_to_msg(swap.previous, active=False, stamp_ns=now)
        response.active = adapter_to_msg(swap.active, active=True, stamp_ns=now)
        if self._adapter_pub is not None:
            self._adapter_pub.publish(response.active)
        self.get_logger().info(response.message)
        return response

    def _on_stats(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, json.dumps(self.stats())
        return response

    def stats(self) -> dict[str, int]:
        out = dict(self.rejected)
        if self._memorizer is not None:
            out.update(self._memorizer.all_stats())
        return out


def main(args: list[str] | None = None) -> int:
    return run(MemorizerNode, args)


if __name__ == "__main__":
    sys.exit(main())

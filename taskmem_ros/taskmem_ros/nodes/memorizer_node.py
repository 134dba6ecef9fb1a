"""Memorizer lifecycle node: camera + microphone topics -> clips -> policy -> episodic store.

configure: open the store, load the policy; activate: subscribe (``sensor_input``) and start the
worker; deactivate: unsubscribe and drain; cleanup: free the models and close the store.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_srvs.srv import Trigger

from taskmem_interfaces.msg import AdapterInfo, MemoryEntry
from taskmem_interfaces.srv import LoadAdapter
from taskmem_ros.adapters import AdapterError
from taskmem_ros.config import ConfigError, TaskMemConfig
from taskmem_ros.diagnostics import MemorizerHealth, Status
from taskmem_ros.llm.base import EngineError
from taskmem_ros.memorizer import Memorizer
from taskmem_ros.node_config import MemorizerParams
from taskmem_ros.nodes.conversions import adapter_to_msg, record_to_msg, swap_response
from taskmem_ros.nodes.diagnostics import DiagnosticsTimer
from taskmem_ros.nodes.forgetting import Forgetting
from taskmem_ros.nodes.lifecycle import LATCHED_QOS, run, schedule_autostart
from taskmem_ros.nodes.params import NODE_KWARGS, NodeParameters
from taskmem_ros.nodes.sensor_input import SensorInput
from taskmem_ros.policy.factory import make_policy
from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.streams.speech import SpeechPipeline
from taskmem_ros.types import MemoryRecord


class MemorizerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("memorizer", **{**NODE_KWARGS, **kwargs})
        self.params = NodeParameters(self, TaskMemConfig(), MemorizerParams())
        self.params.on_change(self._on_live_params)
        # (handle, destroy) made at configure; not `_services`: rclpy keeps its parameter services there
        self._handles: list[tuple[Any, Any]] = []
        self._health: MemorizerHealth | None = None
        self._memorizer: Memorizer | None = None
        self._store: EpisodicStore | None = None
        self._pub: Any = None
        self._adapter_pub: Any = None
        self._service_group = ReentrantCallbackGroup()
        self.sensors = SensorInput(self)
        schedule_autostart(self)

    # -- lifecycle ----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg, self._p = self.params.read(TaskMemConfig), self.params.read(MemorizerParams)
            self._store = EpisodicStore(cfg.store)
            self._store.open()
            policy = make_policy(cfg)
            # Models load here, so a missing or corrupt model file fails configure (path + extra).
            speech = SpeechPipeline(cfg.segmenter, asr_cfg=cfg.asr)
            speech.warm_up()
            warm_up = getattr(policy, "warm_up", None)
            if warm_up is not None:
                warm_up()
        except (ConfigError, StoreError, ImportError, ValueError, EngineError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            if self._store is not None:
                self._store.close()
                self._store = None
            return TransitionCallbackReturn.FAILURE
        self._cfg = cfg
        self._pub = self.create_lifecycle_publisher(MemoryEntry, self._p.memory_topic, 100)
        self._memorizer = Memorizer(cfg, self._store, policy, on_committed=self._publish, speech=speech)
        self._adapter_pub = self.create_publisher(AdapterInfo, self._p.adapter_topic, LATCHED_QOS)
        if cfg.adapter.path:
            try:
                swap = self._memorizer.load_adapter(cfg.adapter.path, cfg.adapter.sha256)
                self.get_logger().info(f"adapter {swap.active.adapter_id!r} loaded from {cfg.adapter.path}")
            except AdapterError as exc:  # memory keeps working on the base model
                self.get_logger().error(f"adapter.path={cfg.adapter.path!r} not loaded, using the base model: {exc}")
        self._adapter_pub.publish(
            adapter_to_msg(self._memorizer.policy.active_adapter, active=True, stamp_ns=time.time_ns())
        )
        g = self._service_group
        self._handles = [
            (self._pub, self.destroy_lifecycle_publisher),
            (self._adapter_pub, self.destroy_publisher),
            *((self.create_service(t, n, cb, callback_group=g), self.destroy_service) for t, n, cb in self._srvs()),
            (DiagnosticsTimer(self, cfg.diagnostics.period_s, cfg.stream, self._diagnostics), DiagnosticsTimer.destroy),
            *Forgetting(self, self._store, cfg, g).handles(),
        ]
        self._health = MemorizerHealth(cfg)
        self.get_logger().info(f"configured: stream={cfg.stream!r} store={cfg.store.url} policy={policy.model_id}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._memorizer is not None
        assert self._health is not None
        if failed := self.sensors.subscribe(self._p, self._memorizer, self._health):
            self.get_logger().error(failed)
            return TransitionCallbackReturn.FAILURE
        self._memorizer.start()
        self.get_logger().info(f"active: listening on {self.sensors.topics}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.sensors.unsubscribe()
        if self._memorizer is not None:
            self._memorizer.stop(drain=True, timeout_s=self._p.flush_timeout_s)
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._memorizer is not None:
            self._memorizer.stop(drain=True, timeout_s=self._p.flush_timeout_s)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.sensors.release()
        handles, self._handles, self._pub, self._adapter_pub = self._handles, [], None, None
        for handle, destroy in handles:
            destroy(handle)
        if self._memorizer is not None:
            self._memorizer.policy.close()
            self._memorizer = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def _srvs(self) -> list[tuple[Any, str, Any]]:
        return [
            (Trigger, "~/flush", self._on_flush),
            (Trigger, "~/get_stats", self._on_stats),
            (LoadAdapter, "~/load_adapter", self._on_load_adapter),
        ]

    def _on_live_params(self, names: list[str]) -> None:
        """Diagnostics thresholds apply from the next report."""
        if self._health is not None:
            self._health.cfg = self._cfg = self.params.read(TaskMemConfig)

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
        self.sensors.wait_quiet(self._p.flush_quiet_s, self._p.flush_timeout_s)
        response.success = self._memorizer.flush(self._p.flush_timeout_s)
        response.message = json.dumps({**self.stats(), "received": self.sensors.received})
        return response

    def _on_load_adapter(self, request: LoadAdapter.Request, response: LoadAdapter.Response) -> LoadAdapter.Response:
        """Verify (checksum, base model, layer) and swap between batches; on any failure the
        previous adapter stays active and the reply says why."""
        if self._memorizer is None:
            response.success, response.message = False, "not configured"
            return response
        before, now = self._memorizer.policy.active_adapter, time.time_ns()
        try:
            swap = self._memorizer.load_adapter(request.path, request.sha256, request.adapter_id)
        except AdapterError as exc:
            self.get_logger().error(f"LoadAdapter {request.path!r} refused, kept previous adapter: {exc}")
            return swap_response(response, before, before, success=False, message=str(exc), stamp_ns=now)
        message = f"active adapter: {swap.active.adapter_id if swap.active else '(base model)'}"
        swap_response(response, swap.previous, swap.active, success=True, message=message, stamp_ns=now)
        if self._adapter_pub is not None:
            self._adapter_pub.publish(response.active)
        self.get_logger().info(message)
        return response

    def _on_stats(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, json.dumps({**self.stats(), "received": self.sensors.received})
        return response

    def _diagnostics(self) -> list[Status]:
        mem, health = self._memorizer, self._health
        return [] if mem is None or health is None else health.report(self.get_name(), mem, self.stats())

    def stats(self) -> dict[str, int]:
        out = dict(self.sensors.rejected)
        if self._memorizer is not None:
            out.update(self._memorizer.all_stats())
        return out


def main(args: list[str] | None = None) -> int:
    return run(MemorizerNode, args)


if __name__ == "__main__":
    sys.exit(main())

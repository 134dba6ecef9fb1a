"""The memorizer's ForgetMemory service and background retention: ROS translation only (what is
selected, and the all-or-nothing transaction, are ``EpisodicStore.forget`` / ``apply_retention``)."""

from __future__ import annotations

from typing import Any

from rclpy.node import Node

from taskmem_interfaces.srv import ForgetMemory
from taskmem_ros.config import TaskMemConfig
from taskmem_ros.nodes.conversions import forget_request_to_selector, record_to_msg
from taskmem_ros.store import EpisodicStore, StoreError


class Forgetting:
    def __init__(self, node: Node, store: EpisodicStore, cfg: TaskMemConfig, group: Any) -> None:
        self.node, self.store, self.clips_dir = node, store, cfg.ingest.keep_clips_dir or None
        self._handles: list[tuple[Any, Any]] = [
            (
                node.create_service(ForgetMemory, "~/forget_memory", self._on_forget, callback_group=group),
                node.destroy_service,
            ),
        ]
        s = cfg.store
        if s.retention_days > 0 or s.max_episodic_entries > 0 or s.max_semantic_entries > 0:
            timer = node.create_timer(s.retention_interval_s, self._apply_retention, callback_group=group)
            self._handles.append((timer, node.destroy_timer))

    def handles(self) -> list[tuple[Any, Any]]:
        """(handle, destroy) pairs for the node's release."""
        return list(self._handles)

    def _on_forget(self, req: ForgetMemory.Request, resp: ForgetMemory.Response) -> ForgetMemory.Response:
        try:
            res = self.store.forget(
                forget_request_to_selector(req),
                dry_run=bool(req.dry_run),
                requested_by=req.requested_by or "service",
                reason=req.reason,
                clips_dir=self.clips_dir,
            )
        except (ValueError, TypeError, StoreError) as exc:
            resp.success, resp.message = False, str(exc)
            return resp
        resp.success, resp.count = True, res.entries
        resp.ids = [int(i) for i in res.ids]
        resp.preview = [record_to_msg(r) for r in res.preview]
        resp.message = f"{'would forget' if res.dry_run else 'forgot'} {res.entries} entries and {res.clips} clips"
        if not res.dry_run:
            self.node.get_logger().info(f"{resp.message} (requested by {req.requested_by or 'service'!r})")
        return resp

    def _apply_retention(self) -> None:
        try:
            n = self.store.apply_retention(clips_dir=self.clips_dir)
        except StoreError as exc:  # retried at the next tick
            self.node.get_logger().warning(f"retention not applied: {exc}", throttle_duration_sec=60.0)
            return
        if n:
            self.node.get_logger().info(f"retention: forgot {n} entries")

"""Tuner lifecycle node (offboard): Phase Two on the logged tasks, the adapter handed to the robot.
Translation only: ``training.supervisor`` decides when a round is due, runs and follows it; README
"The tuner node" lists the interfaces (RunPhase2 action, TunerStatus, AdapterInfo)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from taskmem_interfaces.action import RunPhase2
from taskmem_interfaces.msg import AdapterInfo, TunerStatus
from taskmem_interfaces.srv import GetTunerStatus, LoadAdapter
from taskmem_ros.config import ConfigError, TaskMemConfig, TrainingConfig
from taskmem_ros.diagnostics import Status, tuner_status
from taskmem_ros.node_config import TunerParams
from taskmem_ros.nodes.conversions import ns_to_time, run_result_to_msg, tuner_status_to_msg
from taskmem_ros.nodes.delivery import call_load_adapter
from taskmem_ros.nodes.diagnostics import DiagnosticsTimer
from taskmem_ros.nodes.lifecycle import LATCHED_QOS, run, schedule_autostart
from taskmem_ros.nodes.params import NODE_KWARGS, NodeParameters
from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.training.supervisor import Phase2Supervisor, RunResult, TrainingRun, feedback_fields


class TunerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("tuner", **{**NODE_KWARGS, **kwargs})
        self.params = NodeParameters(self, TaskMemConfig(), TunerParams(), TrainingConfig())
        self.sup: Phase2Supervisor | None = None
        self._store: EpisodicStore | None = None
        # (handle, destroy): made at configure / at activate
        self._handles: list[tuple[Any, Any]] = []
        self._serving: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()
        self._group = ReentrantCallbackGroup()
        schedule_autostart(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            cfg, self._p = self.params.read(TaskMemConfig), self.params.read(TunerParams)
            tcfg = self.params.read(TrainingConfig)
            self._store = EpisodicStore(cfg.store).open()
            self.sup = Phase2Supervisor(
                self._p, cfg, tcfg, self._store, self._on_event, self._on_finished, self._publish_status
            )
        except (ConfigError, StoreError, ValueError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._close_store()
            return TransitionCallbackReturn.FAILURE
        self._adapter_pub = self.create_publisher(AdapterInfo, self._p.adapter_topic, LATCHED_QOS)
        self._status_pub = self.create_publisher(TunerStatus, "~/status", LATCHED_QOS)
        service = self._p.robot_load_adapter_service
        self._load_client = self.create_client(LoadAdapter, service, callback_group=self._group)
        diag = DiagnosticsTimer(self, cfg.diagnostics.period_s, cfg.stream, self._diagnostics)
        self._handles = [
            (self._adapter_pub, self.destroy_publisher),
            (self._status_pub, self.destroy_publisher),
            (self._load_client, self.destroy_client),
            (diag, lambda d: d.destroy()),
        ]
        self._publish_status()
        self.get_logger().info(
            f"configured: store={cfg.store.url} every_n_tasks={self._p.every_n_tasks}"
            f" tasks covered={self.sup.baseline} robot={self._p.robot_load_adapter_service}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        action = ActionServer(
            self,
            RunPhase2,
            "~/run_phase2",
            execute_callback=self._execute,
            goal_callback=lambda _goal: GoalResponse.ACCEPT,  # busy goals are answered in the result
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=self._group,
        )
        srv = self.create_service(GetTunerStatus, "~/get_status", self._on_status, callback_group=self._group)
        self._serving = [(action, ActionServer.destroy), (srv, self.destroy_service)]
        if self._p.every_n_tasks > 0:
            timer = self.create_timer(self._p.poll_s, self._poll, callback_group=MutuallyExclusiveCallbackGroup())
            self._serving.append((timer, self.destroy_timer))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()  # a running round finishes (and delivers) on its own
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_serving(self) -> None:
        serving, self._serving = self._serving, []
        for handle, destroy in serving:
            destroy(handle)

    def _release(self) -> None:
        if self.sup is not None:
            self.sup.terminate()
        with self._lock:
            handles, self._handles = self._handles, []
        for handle, destroy in handles:
            destroy(handle)
        self._close_store()

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def _poll(self) -> None:
        if self.sup is not None and self.sup.due():
            self.get_logger().info("every_n_tasks new tasks since the last adapter: starting Phase Two")
            self.sup.start(reason="every_n_tasks")

    def _execute(self, goal_handle: Any) -> RunPhase2.Result:
        """One goal = one round; its feedback follows the training process until it ends."""
        sup, goal = self.sup, goal_handle.request
        deliver = {RunPhase2.Goal.DELIVER_YES: True, RunPhase2.Goal.DELIVER_NO: False}.get(goal.deliver)
        feedback = lambda ev: goal_handle.publish_feedback(RunPhase2.Feedback(**feedback_fields(ev)))  # noqa: E731
        started = sup.start(goal.reason or "request", deliver, feedback) if sup is not None else "not configured"
        if not isinstance(started, TrainingRun):
            goal_handle.abort()
            outcome = "busy" if started == "already running" else "error"
            return run_result_to_msg(RunResult(outcome, started), RunPhase2.Result())
        while not started.finished.wait(0.2):
            if goal_handle.is_cancel_requested and sup is not None:
                sup.terminate(cancelled=True)
        result = started.result or RunResult("error", "no result")
        ends = {"cancelled": goal_handle.canceled, "done": goal_handle.succeed, "skipped": goal_handle.succeed}
        ends.get(result.outcome, goal_handle.abort)()
        return run_result_to_msg(result, RunPhase2.Result())

    def _on_event(self, event: dict[str, Any]) -> None:
        self._publish_status()  # latched TunerStatus follows the stages (a few per round)

    def _on_finished(self, run_: TrainingRun, result: RunResult) -> None:
        """On the supervisor's thread: publish the adapter, then deliver it (waiting is fine here)."""
        if result.outcome == "done":
            info = run_result_to_msg(result, RunPhase2.Result()).adapter
            info.header.stamp = ns_to_time(time.time_ns())
            self._send("_adapter_pub", info)
            self._publish_status()  # "delivering"
            if self._p.deliver if run_.deliver is None else run_.deliver:
                self._deliver(run_, info, result)

    def _deliver(self, run_: TrainingRun, info: AdapterInfo, result: RunResult) -> None:
        if self.sup is not None:
            self.sup.emit(run_, {"event": "delivering", "stage": "delivering", "message": info.adapter_id})
        p = self._p
        ok, message, active = call_load_adapter(self._load_client, info, p.delivery_wait_s, p.delivery_timeout_s)
        result.delivered, result.delivery_message = ok, message
        result.active_adapter_id = active.adapter_id if active is not None else ""
        if ok:
            self._send("_adapter_pub", active)  # now active on the robot
            self.get_logger().info(f"robot accepted adapter {info.adapter_id!r}: {message}")
        else:  # the robot keeps (or rolled back to) its previous adapter; nothing to undo here
            self.get_logger().error(f"robot refused adapter {info.adapter_id!r}: {message}")

    def _send(self, attr: str, msg: Any) -> None:
        """Publish unless cleanup already destroyed the publisher (the training thread races it)."""
        with self._lock:
            pub = getattr(self, attr) if self._handles else None
        if pub is not None:
            pub.publish(msg)

    def status_msg(self) -> TunerStatus:
        stamp, sup = ns_to_time(time.time_ns()), self.sup
        return TunerStatus(state="unconfigured") if sup is None else tuner_status_to_msg(sup.status(), stamp)

    def _publish_status(self) -> None:
        self._send("_status_pub", self.status_msg())

    def _on_status(self, request: Any, response: GetTunerStatus.Response) -> GetTunerStatus.Response:
        response.status = self.status_msg()
        return response

    def _diagnostics(self) -> list[Status]:
        return [tuner_status(self.get_name(), self.sup.status())] if self.sup is not None else []


def main(args: list[str] | None = None) -> int:
    return run(TunerNode, args)


if __name__ == "__main__":
    sys.exit(main())

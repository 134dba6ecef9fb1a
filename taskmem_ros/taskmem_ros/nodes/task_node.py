"""Task server lifecycle node: QueryMemory service and AnswerTask action, memory-only; translation
of ``answer.service`` (every answered task is logged in the store: what Phase Two learns from)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from taskmem_interfaces.action import AnswerTask
from taskmem_interfaces.srv import QueryMemory
from taskmem_ros.answer import Answerer, close_answerer, make_answerer
from taskmem_ros.answer.service import QueryError, log_answered, query_memory
from taskmem_ros.answer.service import refusal as refusal_of
from taskmem_ros.config import ConfigError, TaskMemConfig
from taskmem_ros.diagnostics import Status, task_statuses
from taskmem_ros.llm.base import EngineError
from taskmem_ros.node_config import TaskServerParams
from taskmem_ros.nodes.conversions import record_to_msg
from taskmem_ros.nodes.diagnostics import DiagnosticsTimer
from taskmem_ros.nodes.lifecycle import run, schedule_autostart
from taskmem_ros.nodes.params import NODE_KWARGS, NodeParameters
from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.streams.messages import time_to_ns

NOT_ACTIVE = "task server is not configured (lifecycle state is not active)"


class TaskNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("task_server", **{**NODE_KWARGS, **kwargs})
        self.params = NodeParameters(self, TaskMemConfig(), TaskServerParams())
        self.params.on_change(self._on_live_params)
        self._diag: DiagnosticsTimer | None = None
        self.answered = 0
        self.last_latency_s: float | None = None
        self._store: EpisodicStore | None = None
        self._answerer: Answerer | None = None
        self._group = ReentrantCallbackGroup()
        self._service: Any = None
        self._action: ActionServer | None = None
        schedule_autostart(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._cfg, self._p = self.params.read(TaskMemConfig), self.params.read(TaskServerParams)
            self._store = EpisodicStore(self._cfg.store).open()
            self._store.warm()  # models load in configure: the first question pays nothing extra
            self._answerer = make_answerer(self._cfg, self._store)
        except (ConfigError, StoreError, ImportError, ValueError, EngineError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._diag = DiagnosticsTimer(self, self._cfg.diagnostics.period_s, self._cfg.stream, self._diagnostics)
        return TransitionCallbackReturn.SUCCESS

    def _on_live_params(self, names: list[str]) -> None:
        """answer.* thresholds apply from the next question (the answerer reads its config per call)."""
        self._cfg = self.params.read(TaskMemConfig)
        if self._answerer is not None:
            self._answerer.cfg = self._cfg.answer
        self.get_logger().info(f"live parameters applied: {names}")

    def _diagnostics(self) -> list[Status]:
        if self._store is None:
            return []
        return task_statuses(self.get_name(), self.answered, self.last_latency_s, self._store, self._cfg)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._service = self.create_service(QueryMemory, "query_memory", self._on_query, callback_group=self._group)
        self._action = ActionServer(
            self,
            AnswerTask,
            "answer_task",
            execute_callback=self._execute,
            # a rejected goal tells the client nothing: one that cannot be answered is aborted
            # with the reason in ``result.message``
            goal_callback=lambda _goal: GoalResponse.ACCEPT,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=self._group,
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        service, action, self._service, self._action = self._service, self._action, None, None
        if service is not None:
            self.destroy_service(service)
        if action is not None:
            action.destroy()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._diag is not None:
            self._diag.destroy()
            self._diag = None
        if self._answerer is not None:
            close_answerer(self._answerer)
        self._answerer = None
        if self._store is not None:
            self._store.close()
            self._store = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.on_deactivate(state)
        return self.on_cleanup(state)

    def _now_ns(self) -> int:
        """ "Now" for a query without a time: the node clock (``/clock`` under use_sim_time),
        or, while that clock is still at zero (no ``/clock`` yet), the latest stamp in memory."""
        now = int(self.get_clock().now().nanoseconds)
        if now > 0 or self._store is None:
            return now
        return self._store.latest_stamp_ns()

    # -- QueryMemory ------------------------------------------------------------------------
    def _on_query(self, req: QueryMemory.Request, resp: QueryMemory.Response) -> QueryMemory.Response:
        store = self._store
        if store is None:
            resp.success, resp.message = False, "task server is not configured"
            return resp
        as_of = time_to_ns(req.as_of) or self._now_ns()
        try:
            records, scores = query_memory(
                store,
                req.text,
                as_of_ns=as_of,
                start_ns=time_to_ns(req.window_start) or None,
                end_ns=time_to_ns(req.window_end) or None,
                limit=int(req.max_results) or self._p.default_max_results,
                mode=req.mode,
                stream=req.stream.strip() or None,  # None: across every stream of a fleet store
            )
        except (QueryError, StoreError) as exc:
            resp.success, resp.message = False, str(exc)
            return resp
        resp.entries = [record_to_msg(r) for r in records]
        resp.scores = scores
        resp.success, resp.message = True, f"{len(records)} entries as of {as_of} ns"
        return resp

    # -- AnswerTask -------------------------------------------------------------------------
    def _execute(self, goal_handle: Any) -> AnswerTask.Result:
        req = goal_handle.request
        result = AnswerTask.Result()
        result.choice_index, result.task_id = -1, -1
        answerer, store = self._answerer, self._store
        refusal = refusal_of(req.question, self._p.max_question_chars) if answerer and store else NOT_ACTIVE
        if refusal or answerer is None or store is None:
            self.get_logger().warning(f"task refused: {refusal}")
            goal_handle.abort()
            result.abstained, result.message = True, refusal
            return result
        t0 = time.perf_counter()
        asked_at = time_to_ns(req.asked_at) or self._now_ns()
        feedback = AnswerTask.Feedback(stage="retrieving", progress=0.0)
        goal_handle.publish_feedback(feedback)
        choices = list(req.choices) or None
        try:
            answer = answerer.answer(
                req.question, as_of_ns=asked_at, choices=choices, stream=req.stream.strip() or None
            )
        except StoreError as exc:
            goal_handle.abort()
            result.abstained, result.message = True, f"memory unavailable: {exc}"
            return result
        feedback.stage, feedback.progress = "logging", 0.8
        goal_handle.publish_feedback(feedback)
        evidence = store.get_entries(answer.evidence_ids)
        result.answer = answer.text
        result.abstained = answer.abstained
        result.choice_index = -1 if answer.choice_index is None else int(answer.choice_index)
        result.evidence_ids = [int(i) for i in answer.evidence_ids]
        result.evidence = [record_to_msg(r) for r in evidence]
        result.confidence = float(answer.confidence)
        result.latency_s = float(time.perf_counter() - t0)
        self.answered, self.last_latency_s = self.answered + 1, result.latency_s
        try:  # every task is logged: Phase Two learns from them; evaluation ones are flagged
            result.task_id = log_answered(
                store, req.question, asked_at, choices, answer, result.latency_s, self._cfg.stream, bool(req.is_eval)
            )
        except StoreError as exc:
            self.get_logger().error(f"could not log task: {exc}")
            result.message = f"answered, but the task could not be logged: {exc}"
        goal_handle.succeed()
        return result


def main(args: list[str] | None = None) -> int:
    return run(TaskNode, args)


if __name__ == "__main__":
    sys.exit(main())

"""Task server lifecycle node: QueryMemory service and AnswerTask action, memory-only.

Every answered task is logged in the store (unless the goal says not to), which is what
Phase Two later learns from.
"""

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
from taskmem_ros.config import ConfigError
from taskmem_ros.llm.base import EngineError
from taskmem_ros.nodes.conversions import record_to_msg
from taskmem_ros.nodes.lifecycle import run, schedule_autostart
from taskmem_ros.nodes.params import declare_config, read_config
from taskmem_ros.store import EpisodicStore, StoreError
from taskmem_ros.streams.messages import time_to_ns

NODE_PARAMS: dict[str, Any] = {
    "autostart": False,
    "default_max_results": 10,
    "max_question_chars": 4000,  # longer questions are rejected, not truncated silently
}
SEARCH_MODES = ("hybrid", "fts", "vector")


class TaskNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("task_server", **kwargs)
        declare_config(self, NODE_PARAMS)
        self._store: EpisodicStore | None = None
        self._answerer: Answerer | None = None
        self._group = ReentrantCallbackGroup()
        self._service: Any = None
        self._action: ActionServer | None = None
        schedule_autostart(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._cfg, self._extra = read_config(self, NODE_PARAMS)
            self._store = EpisodicStore(self._cfg.store)
            self._store.open()
            self._answerer = make_answerer(self._cfg, self._store)
        except (ConfigError, StoreError, ImportError, ValueError, EngineError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._service = self.create_service(QueryMemory, "query_memory", self._on_query, callback_group=self._group)
        self._action = ActionServer(
            self,
            AnswerTask,
            "answer_task",
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=self._group,
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        if self._action is not None:
            self._action.destroy()
            self._action = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
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
        return int(self.get_clock().now().nanoseconds)

    # -- QueryMemory ------------------------------------------------------------------------
    def _on_query(self, req: QueryMemory.Request, resp: QueryMemory.Response) -> QueryMemory.Response:
        store = self._store
        if store is None:
            resp.success, resp.message = False, "task server is not configured"
            return resp
        mode = req.mode or "hybrid"
        if mode not in SEARCH_MODES:
            resp.success, resp.message = False, f"mode={req.mode!r}; expected one of {SEARCH_MODES}"
            return resp
        as_of = time_to_ns(req.as_of) or self._now_ns()
        start = time_to_ns(req.window_start) or None
        end = time_to_ns(req.window_end) or None
        limit = int(req.max_results) or int(self._extra["default_max_results"])
        try:
            if req.text.strip():
                hits = store.search(req.text, as_of_ns=as_of, start_ns=start, end_ns=end, limit=limit, mode=mode)
                records, scores = [h.record for h in hits], [float(h.score) for h in hits]
            else:
                records = store.timeline(as_of_ns=as_of, start_ns=start, end_ns=end, limit=limit, newest_first=True)
                scores = [1.0] * len(records)
        except StoreError as exc:
            resp.success, resp.message = False, str(exc)
            return resp
        resp.entries = [record_to_msg(r) for r in records]
        resp.scores = scores
        resp.success, resp.message = True, f"{len(records)} entries as of {as_of} ns"
        return resp

    # -- AnswerTask -------------------------------------------------------------------------
    def _on_goal(self, goal: AnswerTask.Goal) -> GoalResponse:
        if self._answerer is None:
            return GoalResponse.REJECT
        if not goal.question.strip() or len(goal.question) > int(self._extra["max_question_chars"]):
            self.get_logger().warning(f"rejected task: empty or longer than {self._extra['max_question_chars']} chars")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle: Any) -> AnswerTask.Result:
        req = goal_handle.request
        result = AnswerTask.Result()
        answerer, store = self._answerer, self._store
        if answerer is None or store is None:
            goal_handle.abort()
            result.abstained, result.answer, result.choice_index = True, "task server is not configured", -1
            return result
        t0 = time.perf_counter()
        asked_at = time_to_ns(req.asked_at) or self._now_ns()
        feedback = AnswerTask.Feedback(stage="retrieving", progress=0.0)
        goal_handle.publish_feedback(feedback)
        choices = list(req.choices) or None
        try:
            answer = answerer.answer(req.question, as_of_ns=asked_at, choices=choices)
        except StoreError as exc:
            goal_handle.abort()
            result.abstained, result.answer, result.choice_index = True, f"memory unavailable: {exc}", -1
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
        try:  # every task is logged: Phase Two learns from them; evaluation ones are flagged
            result.task_id = store.log_task(
                question=req.question,
                asked_at_ns=asked_at,
                choices=choices,
                answer=answer.text,
                abstained=answer.abstained,
                choice_index=answer.choice_index,
                confidence=answer.confidence,
                evidence_ids=answer.evidence_ids,
                latency_s=result.latency_s,
                stream=self._cfg.stream,
                is_eval=bool(req.is_eval),
            )
        except StoreError as exc:
            self.get_logger().error(f"could not log task: {exc}")
        goal_handle.succeed()
        return result


def main(args: list[str] | None = None) -> int:
    return run(TaskNode, args)


if __name__ == "__main__":
    sys.exit(main())

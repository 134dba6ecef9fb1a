"""The streaming protocol: a benchmark replayed as the robot would live it.

For each stream, media is fed in stream-time order through the robot's own pipeline
(``Memorizer``: segmentation -> speech -> policy -> store). A question is answered when the
stream clock reaches its ask time, from memory as of that time only (clips already
committed; never the raw video). At the end of each video file the open clip is closed, so
a question asked at the end of a video (VideoMME, EgoTempo) sees all of it.

Runs are resumable: progress and graded answers live in the same SQLite store as the memory
(``eval_runs``/``eval_streams``/``eval_answers``). A stream that was interrupted is replayed
into a fresh memory stream (``...#2``), so half-written memory never leaks into answers.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from taskmem_ros.answer import Answerer, make_answerer
from taskmem_ros.config import TaskMemConfig, to_flat
from taskmem_ros.evaluation.types import NS_PER_S, EvalDataset, EvalQuestion, EvalResult
from taskmem_ros.memorizer import Memorizer
from taskmem_ros.policy.base import MemorizationPolicy
from taskmem_ros.policy.factory import make_policy
from taskmem_ros.store import EpisodicStore
from taskmem_ros.types import Answer

log = logging.getLogger(__name__)

TASK_LOG_MODES = ("eval", "train", "none")
# Benchmark clocks start at 0, which the segmenter (rightly, for live robots) treats as an unset
# header stamp; memory runs on the benchmark clock shifted by this much.
CLOCK_OFFSET_NS = NS_PER_S


class Judge(Protocol):
    def judge(self, question: str, reference: str, prediction: str) -> Any: ...


@dataclasses.dataclass
class RunOptions:
    run: str = "run"
    seed: int = 0
    # "eval": log every question as a task flagged is_eval (kept out of Phase Two training);
    # "train": log them as ordinary tasks (Phase Two may learn from them); "none": no task log.
    task_log: str = "eval"
    subtitles_replace_asr: bool = True  # a video with subtitles uses them instead of ASR on its audio
    progress: bool = True
    max_streams: int | None = None

    def __post_init__(self) -> None:
        if self.task_log not in TASK_LOG_MODES:
            raise ValueError(f"task_log={self.task_log!r} is invalid; expected one of {TASK_LOG_MODES}")


def run_settings(cfg: TaskMemConfig, opts: RunOptions, judge_name: str) -> dict[str, Any]:
    """What a resumed run must share with the original (the store path may move)."""
    flat = {k: v for k, v in to_flat(cfg).items() if not k.startswith("store.url") and k != "stream"}
    return {"config": flat, "seed": opts.seed, "task_log": opts.task_log, "judge": judge_name}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


class StreamingRunner:
    def __init__(
        self,
        cfg: TaskMemConfig,
        store: EpisodicStore,
        opts: RunOptions,
        *,
        judge: Judge | None = None,
        judge_name: str = "anls",
        policy: MemorizationPolicy | None = None,
        answerer: Answerer | None = None,
        on_result: Callable[[EvalResult], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.opts = opts
        if judge is None:  # open answers always get graded: the model-free judge by default
            from taskmem_ros.evaluation.judge import ANLSJudge

            judge = ANLSJudge()
        self.judge: Judge = judge
        self.run_id = store.eval_run(opts.run, run_settings(cfg, opts, judge_name))
        self._policy = policy
        self._answerer = answerer
        self.on_result = on_result
        self.stats: dict[str, int] = {"streams_done": 0, "streams_skipped": 0, "questions": 0, "media_errors": 0}

    @property
    def policy(self) -> MemorizationPolicy:
        if self._policy is None:
            self._policy = make_policy(self.cfg)
        return self._policy

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            self._answerer = make_answerer(self.cfg, self.store)
        return self._answerer

    def run(self, dataset: EvalDataset) -> list[EvalResult]:
        """Memorize and answer every stream not finished yet; all results of the run for this dataset."""
        seed_everything(self.opts.seed)
        if dataset.missing:
            log.warning("%s", dataset.media_report())
        streams = dataset.streams()[: self.opts.max_streams]
        bar = _progress(streams, f"{dataset.name}", self.opts.progress)
        for stream in bar:
            state = self.store.eval_stream_state(self.run_id, dataset.name, stream)
            if state is not None and state.status == "done":
                self.stats["streams_skipped"] += 1
                continue
            self._run_stream(dataset, stream, attempts=(state.attempts + 1) if state else 1)
            self.stats["streams_done"] += 1
        return self.results(dataset.name)

    def results(self, dataset: str) -> list[EvalResult]:
        return [EvalResult(**r) for r in self.store.eval_answers(self.run_id, dataset)]

    # -- one stream -------------------------------------------------------------------------
    def _run_stream(self, dataset: EvalDataset, stream: str, *, attempts: int) -> None:
        from taskmem_ros.errors import MediaError
        from taskmem_ros.evaluation.media import read_segment, read_srt

        memory_stream = f"{self.opts.run}/{dataset.name}/{stream}" + (f"#{attempts}" if attempts > 1 else "")
        self.store.set_eval_stream(
            self.run_id, dataset.name, stream, status="started", memory_stream=memory_stream, attempts=attempts
        )
        mem = Memorizer(dataclasses.replace(self.cfg, stream=memory_stream), self.store, self.policy)
        pending = list(dataset.questions_for(stream))
        seg_cfg = self.cfg.segmenter
        for seg in dataset.segments(stream):
            if seg.subtitle is not None:
                shift = seg.start_ns + CLOCK_OFFSET_NS
                mem.subtitles += [
                    dataclasses.replace(s, start_ns=s.start_ns + shift, end_ns=s.end_ns + shift)
                    for s in read_srt(seg.subtitle)
                ]
            use_audio = seg.use_audio and not (seg.subtitle is not None and self.opts.subtitles_replace_asr)
            seg_end = seg.start_ns
            try:
                reader = read_segment(
                    dataclasses.replace(seg, use_audio=use_audio),
                    keyframe_fps=seg_cfg.keyframe_fps,
                    audio_rate=seg_cfg.audio_rate,
                )
            except MediaError as exc:  # unreadable file: its questions are answered from what memory has
                self.stats["media_errors"] += 1
                log.warning("stream %s: %s (continuing without it)", stream, exc)
                reader = None
            if reader is not None:
                with reader:
                    for kind, item in reader:
                        stamp = item[0] if kind == "frame" else item.stamp_ns
                        pending = self._answer_due(pending, stamp, mem, memory_stream, dataset.name, inclusive=False)
                        if kind == "frame":
                            mem.push_frame_lazy(stamp + CLOCK_OFFSET_NS, item[1])
                        else:
                            mem.push_audio(dataclasses.replace(item, stamp_ns=stamp + CLOCK_OFFSET_NS))
                        seg_end = max(seg_end, stamp)
            mem.flush()  # the end of a file closes its last clip
            pending = self._answer_due(pending, seg_end, mem, memory_stream, dataset.name, inclusive=True)
        mem.flush()
        self._answer_due(pending, None, mem, memory_stream, dataset.name, inclusive=True)
        stats = mem.all_stats()
        self.store.set_eval_stream(
            self.run_id,
            dataset.name,
            stream,
            status="done",
            memory_stream=memory_stream,
            attempts=attempts,
            stats=stats,
        )

    def _answer_due(
        self,
        pending: list[EvalQuestion],
        now_ns: int | None,
        mem: Memorizer,
        memory_stream: str,
        dataset: str,
        *,
        inclusive: bool,
    ) -> list[EvalQuestion]:
        """Answer the questions whose ask time the stream clock has reached (all if now is None)."""
        due = [
            q
            for q in pending
            if now_ns is None or q.ask_ns < now_ns or (inclusive and q.ask_ns <= now_ns + NS_PER_S // 10)
        ]
        if not due:
            return pending
        mem.process_pending()  # clips closed by now are memory by now
        for q in due:
            self._answer(q, memory_stream, dataset)
        done = {q.qid for q in due}
        return [q for q in pending if q.qid not in done]

    def _answer(self, q: EvalQuestion, memory_stream: str, dataset: str) -> EvalResult:
        t0 = time.perf_counter()
        try:
            ans = self.answerer.answer(
                q.question, as_of_ns=q.ask_ns + CLOCK_OFFSET_NS, choices=list(q.choices) or None, stream=memory_stream
            )
        except ValueError as exc:  # e.g. an empty question in a dataset record
            log.warning("question %s not answerable: %s", q.qid, exc)
            ans = Answer(text="", abstained=True)
        ans.latency_s = ans.latency_s or (time.perf_counter() - t0)
        result = self.grade(q, ans)
        result.dataset = dataset  # the name this run files it under (e.g. "videomme-synthetic")
        task_id = None
        if self.opts.task_log != "none":
            task_id = self.store.log_task(
                q.question,
                asked_at_ns=q.ask_ns + CLOCK_OFFSET_NS,
                answer=ans,
                choices=list(q.choices) or None,
                stream=memory_stream,
                is_eval=self.opts.task_log == "eval",
                outcome=result.correct if not ans.abstained else "abstained",
            )
        self.store.record_eval_answer(self.run_id, dataset, q.qid, dataclasses.asdict(result), task_id)
        self.stats["questions"] += 1
        if self.on_result is not None:
            self.on_result(result)
        return result

    def grade(self, q: EvalQuestion, ans: Answer) -> EvalResult:
        result = EvalResult(
            qid=q.qid,
            dataset=q.dataset,
            stream=q.stream,
            ask_ns=q.ask_ns,
            question=q.question,
            reference=q.answer,
            prediction=ans.text,
            abstained=ans.abstained,
            correct=False,
            choice_index=ans.choice_index,
            category=dict(q.category),
            evidence_ids=list(ans.evidence_ids),
            latency_s=float(ans.latency_s),
        )
        if ans.abstained:
            return result
        if q.choices:
            result.correct = ans.choice_index is not None and ans.choice_index == q.answer_index
            return result
        verdict = self.judge.judge(q.question, q.answer, ans.text)
        result.correct = bool(verdict.correct)
        result.score = float(verdict.score)
        result.anls = float(verdict.anls)
        return result


def _progress(items: Sequence[str], desc: str, enabled: bool) -> Iterable[str]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="stream")

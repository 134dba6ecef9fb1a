"""Phase Two: after deployment, tune a small adapter so the policy memorizes what logged tasks need.

1. ``sample_candidates``: K memories per kept clip sampled from the current policy (T > 0);
2. ``score_candidates`` + ``build_pairs``: each scored by the task-defined reward
   (``task_reward.TaskReward``); per clip, best vs worst (ties skipped);
3. ``train_steering``: DPO where the only trainable parameter is one steering vector added
   (x scale) to one decoder layer's output; the reference policy is the same model without it;
4. ``run_phase2``: the whole round on logged tasks and kept clips, evaluated before/after on
   the most recent tasks (held out), written atomically and registered (inactive) in the store.

trl 1.16 has no stand-alone DPO loss function (the sigmoid loss lives inside
``DPOTrainer._compute_loss``), so the loss is written out here:
``-logsigmoid(beta * ((logp_c - logp_c_ref) - (logp_r - logp_r_ref)))``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from taskmem_ros.config import TaskMemConfig, TrainingConfig
from taskmem_ros.llm.base import ChatRequest
from taskmem_ros.policy.parsing import parse_entries
from taskmem_ros.store.tasks import TaskRecord
from taskmem_ros.training.task_reward import TaskReward, evidence_windows, known_choice
from taskmem_ros.types import Clip, PolicyContext

log = logging.getLogger(__name__)
Progress = Callable[[str, float, dict[str, Any]], None]


class Phase2Skipped(ValueError):
    """Nothing to learn from (too few logged tasks, no clips, no informative pairs)."""


@dataclass
class Candidate:
    """One sampled memory of one clip: the raw completion, its parsed entries, its reward."""

    clip_pos: int  # position in the clips list it was sampled for
    text: str
    entries: list[str]
    reward: float = 0.0


@dataclass
class Pair:
    """Best (chosen) vs worst (rejected) candidate of one clip, under the prompt that made them."""

    clip_pos: int
    request: ChatRequest
    chosen: Candidate
    rejected: Candidate

    @property
    def margin(self) -> float:
        return self.chosen.reward - self.rejected.reward


@dataclass
class Phase2Result:
    adapter_id: str
    path: str
    sha256: str
    metrics: dict[str, Any] = field(default_factory=dict)
    registered: bool = False


# --------------------------------------------------------------------------- sampling


def sample_candidates(
    engine: Any,
    clips: Sequence[Clip],
    contexts: Sequence[PolicyContext],
    k: int,
    temperature: float,
    seed: int,
    *,
    policy_cfg: Any = None,
    greedy: bool = False,
) -> tuple[list[list[Candidate]], list[ChatRequest]]:
    """K sampled memories per clip from the engine's current policy (its active adapter applies).

    Returns (candidates per clip, the memorization request of each clip). ``greedy``: one
    temperature-0 output per clip instead (evaluation).
    """
    import torch

    from taskmem_ros.config import PolicyConfig
    from taskmem_ros.policy.llm_policy import LLMPolicy

    pcfg = policy_cfg if policy_cfg is not None else PolicyConfig(backend="qwen3vl")
    policy = LLMPolicy(engine, pcfg, release=False)
    base = policy.requests(clips, contexts)
    n = 1 if greedy else int(k)
    reqs = []
    for r in base:
        for _ in range(n):
            reqs.append(
                ChatRequest(
                    r.messages,
                    max_new_tokens=r.max_new_tokens,
                    temperature=0.0 if greedy else float(temperature),
                    json_schema=r.json_schema,
                    use_adapter=True,
                    enable_thinking=r.enable_thinking,
                )
            )
    torch.manual_seed(int(seed))
    gens = engine.generate(reqs)
    out: list[list[Candidate]] = []
    for pos in range(len(clips)):
        row = []
        for g in gens[pos * n : (pos + 1) * n]:
            res = parse_entries(
                g.text, max_entries=pcfg.max_entries, max_chars=pcfg.max_entry_chars, cut=g.finish_reason == "length"
            )
            row.append(Candidate(pos, g.text, [e.text for e in res.entries]))
        out.append(row)
    return out, base


def score_candidates(reward: TaskReward, clips: Sequence[Clip], candidates: Sequence[Sequence[Candidate]]) -> None:
    """Set ``Candidate.reward`` in place."""
    for clip, row in zip(clips, candidates, strict=True):
        for c in row:
            c.reward = reward.score(clip, c.entries)


def build_pairs(requests: Sequence[ChatRequest], candidates: Sequence[Sequence[Candidate]]) -> list[Pair]:
    """Per clip, the best vs the worst scored candidate (first of equals); clips where every
    candidate scores the same, or the two texts are identical, teach nothing and are skipped."""
    pairs = []
    for pos, (req, row) in enumerate(zip(requests, candidates, strict=True)):
        if len(row) < 2:
            continue
        rewards = [c.reward for c in row]
        best = row[int(np.argmax(rewards))]
        worst = row[int(np.argmin(rewards))]
        if best.reward <= worst.reward or best.text == worst.text:
            continue
        pairs.append(Pair(pos, req, best, worst))
    return pairs


# --------------------------------------------------------------------------- DPO on a steering vector


def resolve_layer(model: Any, layer: int) -> int:
    from taskmem_ros.adapters import decoder_layers

    n = len(decoder_layers(model))
    if layer < 0:
        return n // 2
    if layer >= n:
        raise ValueError(f"phase2.layer={layer} is out of range; the model has {n} decoder layers")
    return int(layer)


def _sequence(engine: Any, request: ChatRequest, completion: str) -> tuple[dict[str, Any], Any]:
    """Model inputs for prompt + completion (+ end of turn) and the completion's token ids."""
    import torch

    inputs = engine.prepare([request])
    ids = engine.tokenizer(completion + "<|im_end|>", add_special_tokens=False)["input_ids"]
    target = torch.tensor([ids], device=inputs["input_ids"].device)
    inputs["input_ids"] = torch.cat([inputs["input_ids"], target], dim=1)
    inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(target)], dim=1)
    if "mm_token_type_ids" in inputs:
        mm = inputs["mm_token_type_ids"]
        inputs["mm_token_type_ids"] = torch.cat([mm, torch.zeros_like(target, dtype=mm.dtype)], dim=1)
    return inputs, target


def _logp(model: Any, inputs: dict[str, Any], target: Any) -> Any:
    """Sum of the completion tokens' log-probabilities."""
    import torch

    n = target.shape[1]
    logits = model(**inputs).logits[:, -n - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1).sum()


def train_steering(
    engine: Any,
    pairs: Sequence[Pair],
    *,
    layer: int,
    steps: int,
    lr: float,
    beta: float,
    scale: float,
    seed: int,
    rpo_alpha: float = 1.0,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """DPO where the only trainable parameter is a steering vector at decoder layer ``layer``
    (-1: the middle one); the reference is the model without it (vector = 0).

    ``rpo_alpha``: weight of the chosen completion's mean token NLL added to the DPO loss (as
    trl's ``rpo_alpha``): with a handful of pairs, plain DPO lowers the rejected memory by
    breaking the text altogether (the chosen one falls too); the NLL term keeps the chosen
    memory likely. 0 = plain DPO.

    Full batch (every pair) per Adam step. Returns (vector, log) with the per-step loss and
    the preference accuracy (share of pairs whose implicit reward margin is > 0).
    """
    import torch

    from taskmem_ros.adapters import decoder_layers

    if not pairs:
        raise Phase2Skipped("no training pairs: every clip's candidates scored the same")
    model = engine.model
    layer = resolve_layer(model, layer)
    hidden = int(engine.text_config.hidden_size)
    torch.manual_seed(int(seed))
    vec = torch.nn.Parameter(torch.zeros(hidden, dtype=torch.float32))
    state = {"on": False}

    def hook(module: Any, args: Any, output: Any) -> Any:
        if not state["on"]:
            return None
        if isinstance(output, torch.Tensor):
            return output + (vec * scale).to(output.dtype)
        return type(output)([output[0] + (vec * scale).to(output[0].dtype), *output[1:]])

    seqs = [(_sequence(engine, p.request, p.chosen.text), _sequence(engine, p.request, p.rejected.text)) for p in pairs]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    suspend = getattr(getattr(engine, "slot", None), "suspended", None)
    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    losses: list[float] = []
    accs: list[float] = []
    t0 = time.perf_counter()
    try:
        import contextlib

        with suspend() if callable(suspend) else contextlib.nullcontext():
            for p, _ in flags:
                p.requires_grad_(False)
            model.eval()  # no dropout: the policy and its reference differ by the vector only
            with torch.no_grad():
                ref = [(_logp(model, *c).item(), _logp(model, *r).item()) for c, r in seqs]
            state["on"] = True
            opt = torch.optim.Adam([vec], lr=lr)
            for step in range(int(steps)):
                opt.zero_grad()
                total = torch.zeros(())
                hits = 0
                for (c, r), (rc, rr) in zip(seqs, ref, strict=True):
                    lc = _logp(model, *c)
                    margin = (lc - rc) - (_logp(model, *r) - rr)
                    total = total - torch.nn.functional.logsigmoid(beta * margin)
                    if rpo_alpha:
                        total = total - rpo_alpha * lc / c[1].shape[1]
                    hits += int(margin.item() > 0)
                loss = total / len(seqs)
                loss.backward()
                opt.step()
                losses.append(float(loss.item()))
                accs.append(hits / len(seqs))
                if progress is not None:
                    progress(step + 1, losses[-1])
    finally:
        state["on"] = False
        handle.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    vector = vec.detach().cpu().numpy().astype(np.float32)
    info = {
        "layer": layer,
        "steps": int(steps),
        "pairs": len(pairs),
        "loss": losses,
        "preference_accuracy": accs,
        "vector_norm": float(np.linalg.norm(vector)),
        "train_s": time.perf_counter() - t0,
    }
    return vector, info


def train_lora_grpo(
    cfg: TaskMemConfig,
    tcfg: TrainingConfig,
    *,
    clips: Sequence[Clip],
    contexts: Sequence[PolicyContext],
    reward: TaskReward,
    embedder: Any,
    out_dir: Path,
    seed: int,
) -> Path:
    """LoRA + trl GRPOTrainer on the task reward (the alternative to the steering vector).

    A fresh copy of the base model is trained (never the serving engine's). The group size is
    ``phase2.candidates`` and sampling uses ``phase2.temperature``; optimiser and LoRA settings
    come from ``phase1.*`` (a LoRA needs Phase One's small learning rate, not the steering one).
    Returns the peft adapter directory."""
    import dataclasses

    from taskmem_ros.training.phase1 import build_phase1_dataset, run_phase1
    from taskmem_ros.training.task_reward import task_reward_fn

    p2 = tcfg.phase2
    lora_cfg = dataclasses.replace(
        tcfg,
        phase1=dataclasses.replace(
            tcfg.phase1, method="lora", num_generations=p2.candidates, temperature=p2.temperature, batch_size=1
        ),
    )
    dataset = build_phase1_dataset(list(clips), list(contexts), policy_cfg=cfg.policy)
    # the task reward looks clips up by position in reward.clips
    positions = [next(i for i, c in enumerate(reward.clips) if c is clip) for clip in clips]
    dataset = dataset.remove_columns("clip_index").add_column("clip_index", positions)
    result = run_phase1(
        cfg.model,
        lora_cfg,
        dataset,
        output_dir=out_dir,
        embedder=embedder,
        max_steps=p2.steps,
        seed=seed,
        reward_override=([task_reward_fn(reward, max_entries=cfg.policy.max_entries)], [1.0]),
    )
    if result.adapter_dir is None:
        raise RuntimeError("GRPO finished without a LoRA adapter directory")
    return Path(result.adapter_dir)


# --------------------------------------------------------------------------- the round


def _split(tasks: list[TaskRecord], holdout_fraction: float) -> tuple[list[TaskRecord], list[TaskRecord]]:
    n_hold = math.ceil(len(tasks) * holdout_fraction) if holdout_fraction > 0 else 0
    n_hold = min(n_hold, len(tasks) - 1)
    return tasks[: len(tasks) - n_hold], tasks[len(tasks) - n_hold :]


def _evaluate(
    engine: Any,
    clips: Sequence[Clip],
    contexts: Sequence[PolicyContext],
    reward: TaskReward,
    tasks: Sequence[TaskRecord],
    *,
    k: int,
    temperature: float,
    seed: int,
    policy_cfg: Any,
) -> dict[str, float]:
    """Held-out metrics of the engine's current policy on the clips the held-out tasks are about."""
    rel = [i for i, c in enumerate(clips) if reward.relevant(c)]
    out: dict[str, float] = {"clips": float(len(rel))}
    greedy, _ = sample_candidates(engine, clips, contexts, 1, 0.0, seed, policy_cfg=policy_cfg, greedy=True)
    out["greedy_reward"] = float(np.mean([reward.score(clips[i], greedy[i][0].entries) for i in rel])) if rel else 0.0
    out["accuracy"] = reward.accuracy(tasks, [(c, g[0].entries) for c, g in zip(clips, greedy, strict=True)])
    sub = [clips[i] for i in rel]
    if sub:
        sampled, _ = sample_candidates(
            engine, sub, [contexts[i] for i in rel], k, temperature, seed + 1, policy_cfg=policy_cfg
        )
        scores = [reward.score(c, cand.entries) for c, row in zip(sub, sampled, strict=True) for cand in row]
        out["sampled_reward"] = float(np.mean(scores))
        out["sampled_useful"] = float(np.mean([s > 0 for s in scores]))
    else:
        out["sampled_reward"] = out["sampled_useful"] = 0.0
    return out


def _evaluate_with(
    engine: Any,
    adapter: Path,
    clips: list[Clip],
    contexts: list[PolicyContext],
    reward: TaskReward,
    held: list[TaskRecord],
    common: dict[str, Any],
) -> dict[str, Any]:
    """Held-out metrics with ``adapter`` applied; the engine's previous adapter is restored."""
    previous = engine.active_meta
    engine.load_adapter(str(adapter))
    try:
        return _evaluate(engine, clips, contexts, reward, held, **common)
    finally:
        engine.load_adapter(previous.path if previous is not None else "")


def run_phase2(
    cfg: TaskMemConfig,
    tcfg: TrainingConfig,
    *,
    store: Any,
    archive: Any,
    engine: Any = None,
    stream: str | None = None,
    progress: Progress | None = None,
    window_s: float = 60.0,
    eval_samples: int | None = None,
) -> Phase2Result:
    """One Phase Two round; the adapter is written and registered inactive (activation is the
    robot's LoadAdapter's job). The engine's adapter state is restored afterwards.

    ``window_s``: the evidence window of a task whose cited entries are unknown;
    ``eval_samples``: sampled memories per held-out clip for the before/after metrics
    (default ``phase2.candidates``).
    """
    p2 = tcfg.phase2
    stream = stream or cfg.stream
    report: Progress = progress or (lambda stage, frac, info: None)
    tasks = store.tasks(stream=stream, is_eval=False)
    if len(tasks) < p2.min_tasks:
        raise Phase2Skipped(
            f"{len(tasks)} logged task(s) on stream {stream!r}; phase2.min_tasks={p2.min_tasks} are needed"
        )
    clips = archive.recent(stream, p2.max_clips)
    if not clips:
        raise Phase2Skipped(f"no kept clips for stream {stream!r}; Phase Two samples new memories for them")
    train_tasks, held = _split(tasks, p2.holdout_fraction)
    windows = evidence_windows(store, tasks)
    embedder = store.embedder
    train_reward = TaskReward(train_tasks, embedder=embedder, window_s=window_s, evidence=windows, clips=clips)
    held_reward = TaskReward(held, embedder=embedder, window_s=window_s, evidence=windows, clips=clips)

    owned = engine is None
    if owned:
        from taskmem_ros.llm.transformers_engine import shared_engine

        engine = shared_engine(cfg.model)
    try:
        contexts = [
            PolicyContext(recent_memories=store.recent(c.stream, cfg.policy.context_size, as_of_ns=c.start_ns))
            for c in clips
        ]
        k_eval = int(eval_samples or p2.candidates)
        common: dict[str, Any] = {
            "k": k_eval,
            "temperature": p2.temperature,
            "seed": p2.seed + 1000,
            "policy_cfg": cfg.policy,
        }
        report("evaluate_before", 0.0, {"tasks": len(tasks), "held_out": len(held), "clips": len(clips)})
        before = _evaluate(engine, clips, contexts, held_reward, held, **common) if held else {}

        train_pos = [i for i, c in enumerate(clips) if train_reward.relevant(c)]
        train_clips = [clips[i] for i in train_pos]
        report("sample", 0.1, {"clips": len(train_clips), "candidates": p2.candidates})
        cands, reqs = sample_candidates(
            engine,
            train_clips,
            [contexts[i] for i in train_pos],
            p2.candidates,
            p2.temperature,
            p2.seed,
            policy_cfg=cfg.policy,
        )
        score_candidates(train_reward, train_clips, cands)
        pairs = build_pairs(reqs, cands)
        sampled_train_reward = float(np.mean([c.reward for row in cands for c in row])) if cands else 0.0
        report("train", 0.3, {"pairs": len(pairs)})

        if p2.adapter == "lora":
            return _finish_lora(
                cfg,
                tcfg,
                engine=engine,
                store=store,
                stream=stream,
                clips=clips,
                contexts=contexts,
                train_pos=train_pos,
                train_reward=train_reward,
                held_reward=held_reward,
                held=held,
                before=before,
                common=common,
                report=report,
                n_tasks=len(tasks),
                n_train=len(train_tasks),
            )

        def on_step(step: int, loss: float) -> None:
            report("train", 0.3 + 0.5 * step / p2.steps, {"step": step, "loss": loss})

        vector, train_log = train_steering(
            engine,
            pairs,
            layer=p2.layer,
            steps=p2.steps,
            lr=p2.learning_rate,
            beta=p2.beta,
            scale=p2.scale,
            seed=p2.seed,
            progress=on_step,
        )
        adapter_id = "phase2-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = Path(p2.adapters_dir) / f"{adapter_id}.safetensors"
        metrics: dict[str, Any] = {
            "tasks": len(tasks),
            "train_tasks": len(train_tasks),
            "held_out_tasks": len(held),
            "clips": len(clips),
            "train_clips": len(train_clips),
            "pairs": len(pairs),
            "sampled_train_reward": sampled_train_reward,
            "final_loss": train_log["loss"][-1],
            "final_preference_accuracy": train_log["preference_accuracy"][-1],
            "vector_norm": train_log["vector_norm"],
            "train_s": train_log["train_s"],
            "known_answer_tasks": sum(known_choice(t) is not None for t in held),
        }
        metrics.update({f"before_{k}": v for k, v in before.items()})

        from taskmem_ros.adapters import adapter_sha256, save_steering

        layer = int(train_log["layer"])
        save_steering(path, vector, base_model=engine.model_id, layer=layer, scale=p2.scale, adapter_id=adapter_id)
        if held:
            report("evaluate_after", 0.85, {"adapter_id": adapter_id})
            after = _evaluate_with(engine, path, clips, contexts, held_reward, held, common)
            metrics.update({f"after_{k}": v for k, v in after.items()})
        metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        # the final artifact carries its metrics; written atomically (again) before registering
        save_steering(
            path,
            vector,
            base_model=engine.model_id,
            layer=layer,
            scale=p2.scale,
            adapter_id=adapter_id,
            extra={"metrics": metrics, "phase": 2, "stream": stream},
        )
        sha = adapter_sha256(path)
        report("register", 0.95, {"adapter_id": adapter_id, "path": str(path)})
        store.register_adapter(
            adapter_id,
            kind="steering",
            base_model=engine.model_id,
            path=str(path),
            sha256=sha,
            metrics=metrics,
            active=False,
        )
        report("done", 1.0, {"adapter_id": adapter_id, **{k: v for k, v in metrics.items() if k.startswith("after_")}})
        return Phase2Result(adapter_id, str(path), sha, metrics, registered=True)
    finally:
        if owned:
            from taskmem_ros.llm.transformers_engine import release_engine

            release_engine(engine)


def _finish_lora(
    cfg: TaskMemConfig,
    tcfg: TrainingConfig,
    *,
    engine: Any,
    store: Any,
    stream: str,
    clips: list[Clip],
    contexts: list[PolicyContext],
    train_pos: list[int],
    train_reward: TaskReward,
    held_reward: TaskReward,
    held: list[TaskRecord],
    before: dict[str, Any],
    common: dict[str, Any],
    report: Progress,
    n_tasks: int,
    n_train: int,
) -> Phase2Result:
    """Phase Two with a LoRA: GRPO on the task reward, then the same evaluation, atomic
    artifact (a peft directory + ``taskmem_adapter.json``) and registration as for steering."""
    import json
    import shutil
    import tempfile

    from taskmem_ros.adapters import adapter_sha256

    p2 = tcfg.phase2
    adapter_id = "phase2-lora-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = Path(p2.adapters_dir) / adapter_id
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{adapter_id}.", dir=final.parent))
    try:
        report("train", 0.3, {"adapter": "lora", "clips": len(train_pos)})
        adapter_dir = train_lora_grpo(
            cfg,
            tcfg,
            clips=[clips[i] for i in train_pos],
            contexts=[contexts[i] for i in train_pos],
            reward=train_reward,
            embedder=store.embedder,
            out_dir=work / "grpo",
            seed=p2.seed,
        )
        staged = work / "adapter"
        shutil.copytree(adapter_dir, staged)
        metrics: dict[str, Any] = {
            "tasks": n_tasks,
            "train_tasks": n_train,
            "held_out_tasks": len(held),
            "clips": len(clips),
            "train_clips": len(train_pos),
        }
        metrics.update({f"before_{k}": v for k, v in before.items()})
        if held:
            report("evaluate_after", 0.85, {"adapter_id": adapter_id})
            after = _evaluate_with(engine, staged, clips, contexts, held_reward, held, common)
            metrics.update({f"after_{k}": v for k, v in after.items()})
        metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        sidecar = {"adapter_id": adapter_id, "metrics": metrics, "phase": 2, "stream": stream}
        (staged / "taskmem_adapter.json").write_text(json.dumps(sidecar, indent=2))
        staged.rename(final)  # atomic on one filesystem: the robot never sees a half-written adapter
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sha = adapter_sha256(final)
    report("register", 0.95, {"adapter_id": adapter_id, "path": str(final)})
    store.register_adapter(
        adapter_id, kind="lora", base_model=engine.model_id, path=str(final), sha256=sha, metrics=metrics, active=False
    )
    report("done", 1.0, {"adapter_id": adapter_id, **{k: v for k, v in metrics.items() if k.startswith("after_")}})
    return Phase2Result(adapter_id, str(final), sha, metrics, registered=True)

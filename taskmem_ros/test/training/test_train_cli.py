"""taskmem-train as the tuner node runs it: a subprocess speaking JSON lines on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskmem_ros.llm.tiny import synthetic_clip

NS = 1_000_000_000


def _train(*args: str, timeout: float = 600) -> tuple[int, list[dict[str, Any]], str]:
    cmd = [sys.executable, "-m", "taskmem_ros.training.cli", *args]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]  # every line is JSON
    return done.returncode, events, done.stderr


def _params(path: Path, **sections: Any) -> Path:
    path.write_text(yaml.safe_dump({"tuner": {"ros__parameters": sections}}))
    return path


@pytest.fixture
def logged(tmp_path: Path) -> dict[str, Any]:
    """A store with memories and logged tasks about three kept clips."""
    from taskmem_ros.config import StoreConfig
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.store.clip_archive import ClipArchive
    from taskmem_ros.types import MemoryDraft

    db, clips = tmp_path / "memory.db", tmp_path / "clips"
    archive = ClipArchive(clips)
    speech = ["The keys are on the kitchen table.", "The spare battery is in the blue cabinet.", "Meeting at three."]
    with EpisodicStore(StoreConfig(url=f"sqlite:///{db}", embedder="hash")) as store:
        for i, s in enumerate(speech):
            clip = synthetic_clip(i, s)
            archive.save(clip)
            recs = store.add_entries("robot", [MemoryDraft(text=s, start_ns=clip.start_ns, end_ns=clip.end_ns)])
            store.log_task(
                f"Question {i}: {s.split(' is ')[0].split(' are ')[0]}?",
                asked_at_ns=clip.end_ns + 5 * NS,
                answer=s,
                evidence_ids=[r.id for r in recs],
                stream="robot",
            )
        store.log_task("an evaluation question", asked_at_ns=40 * NS, is_eval=True, stream="robot")
    return {"db": db, "clips": clips, "tmp": tmp_path, "speech": speech}


def test_bad_params_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = _params(tmp_path / "bad.yaml", phase2={"steps": 0})
    rc, events, err = _train("phase2", "--params", str(bad), "--json-progress", timeout=120)
    assert rc == 2, err
    assert events == [{"event": "error", "message": "phase2.steps=0 is invalid; expected >= 1"}]
    assert "Traceback" not in err

    typo = _params(tmp_path / "typo.yaml", phase2={"stepz": 3})
    rc, _, err = _train("phase2", "--params", str(typo), timeout=120)
    assert rc == 2 and "phase2.stepz" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err

    rc, events, _ = _train("phase2", "--params", str(tmp_path / "missing.yaml"), "--json-progress", timeout=120)
    assert rc == 2 and "does not exist" in events[-1]["message"]

    ok = _params(tmp_path / "ok.yaml", store={"url": f"sqlite:///{tmp_path / 'none.db'}", "embedder": "hash"})
    rc, events, _ = _train("phase2", "--params", str(ok), "--clips-dir", str(tmp_path), "--json-progress", timeout=120)
    assert rc == 2 and "no such database" in events[-1]["message"]
    assert not (tmp_path / "none.db").exists()  # never creates an empty store to train on
    rc, events, _ = _train("phase2", "--params", str(ok), "--json-progress", timeout=120)
    assert rc == 2 and "clips" in events[-1]["message"]


def test_too_few_tasks_is_skipped(logged: dict[str, Any]) -> None:
    params = _params(
        logged["tmp"] / "p.yaml",
        store={"url": f"sqlite:///{logged['db']}", "embedder": "hash"},
        ingest={"keep_clips_dir": str(logged["clips"])},
        phase2={"min_tasks": 10},
    )
    rc, events, err = _train("phase2", "--params", str(params), "--json-progress", timeout=300)
    assert rc == 3, err
    assert events[-1]["event"] == "skipped" and "min_tasks=10" in events[-1]["message"]
    assert "Traceback" not in err


@pytest.mark.slow
def test_real_small_run_prints_done_with_matching_sha(logged: dict[str, Any]) -> None:
    from taskmem_ros.adapters import adapter_sha256, read_adapter
    from taskmem_ros.config import PolicyConfig
    from taskmem_ros.llm.tiny import build_tiny_qwen3vl, teach
    from taskmem_ros.policy.prompt import clip_messages
    from taskmem_ros.types import PolicyContext

    # a policy that memorizes either the spoken fact or an unrelated line: sampled candidates differ
    tiny_qwen3vl = build_tiny_qwen3vl(logged["tmp"] / "model", seed=0)
    pcfg = PolicyConfig(backend="qwen3vl", max_new_tokens=40, context_size=0)
    examples = []
    for i, s in enumerate(logged["speech"]):
        messages = clip_messages(synthetic_clip(i, s), PolicyContext(), pcfg)
        examples.append((messages, json.dumps({"entries": [{"kind": "semantic", "text": s}]})))
        examples.append((messages, json.dumps({"entries": [{"kind": "episodic", "text": "A grey wall."}]})))
    teach(tiny_qwen3vl, examples, steps=40)
    adapters = logged["tmp"] / "adapters"
    params = _params(
        logged["tmp"] / "p.yaml",
        stream="robot",
        store={"url": "sqlite:///elsewhere.db", "embedder": "hash"},  # overridden by --db
        policy={"backend": "qwen3vl", "max_new_tokens": 40, "context_size": 0},
        model={"model_id": str(tiny_qwen3vl), "device_map": "cpu", "max_pixels": 64 * 64},
        # 6 candidates per clip from a policy taught both answers: all 6 alike on all 3 clips (no
        # informative pair) has odds of about 1 in 30,000, where 3 candidates made it 1 in 64
        phase2={"min_tasks": 2, "candidates": 6, "steps": 3, "holdout_fraction": 0.0, "max_clips": 3, "layer": 1},
    )
    rc, events, err = _train(
        "phase2",
        "--params",
        str(params),
        "--db",
        str(logged["db"]),
        "--clips-dir",
        str(logged["clips"]),
        "--adapters-dir",
        str(adapters),
        "--json-progress",
    )
    assert rc == 0, (events[-3:], err[-3000:])
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and all({"stage", "fraction"} <= set(e) for e in progress)
    assert [e["fraction"] for e in progress] == sorted(e["fraction"] for e in progress)
    done = events[-1]
    assert done["event"] == "done" and set(done) >= {"adapter_id", "path", "sha256", "metrics"}
    path = Path(done["path"])
    assert path.parent == adapters and done["sha256"] == adapter_sha256(path)
    meta = read_adapter(path)
    assert meta.adapter_id == done["adapter_id"] and meta.base_model == str(tiny_qwen3vl)


@pytest.mark.slow
def test_phase1_cli_trains_a_lora_on_kept_clips(logged: dict[str, Any], taught_qwen3vl: Path) -> None:
    """`taskmem-train phase1` end to end: kept clips -> GRPO -> a LoRA adapter directory, with
    fidelity scored by a judge model looking at the frames (the same tiny model here); the wall
    budget (``--max-minutes``) ends it after the first step of the 3 asked."""
    params = _params(
        logged["tmp"] / "p1.yaml",
        store={"url": f"sqlite:///{logged['db']}", "embedder": "hash"},
        model={"device_map": "cpu", "model_id": str(taught_qwen3vl), "max_pixels": 4096},
        phase1={"num_generations": 2, "batch_size": 1, "max_new_tokens": 48},  # the smallest GRPO group
    )
    out = logged["tmp"] / "phase1_out"
    code, events, err = _train(
        "phase1", "--params", str(params), "--model", str(taught_qwen3vl), "--clips-dir", str(logged["clips"]),
        "--output-dir", str(out), "--steps", "3", "--max-minutes", "0.0001", "--json-progress",
        "--judge-fidelity", "qwen3vl",
    )  # fmt: skip
    assert code == 0, err[-2000:]
    done = events[-1]
    assert done["event"] == "done", events
    assert done["metrics"]["steps_done"] == 1 and done["metrics"]["stopped_by_budget"] == 1
    assert (out / "adapter" / "adapter_config.json").is_file()

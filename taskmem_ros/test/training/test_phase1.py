"""Phase One: GRPO with trl on a tiny Qwen3-VL (LoRA), end to end on CPU."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from tiny_models import TAUGHT_MEMORY

from taskmem_ros.config import Phase1Config, TrainingConfig
from taskmem_ros.llm.tiny import synthetic_clip
from taskmem_ros.store.embedding import HashEmbedder
from taskmem_ros.training.phase1 import build_phase1_dataset, run_phase1, text_only_messages

SPEECH = ["", "The keys are on the table.", "Hello robot.", "Meeting at three."]


def test_dataset_rows() -> None:
    clips = [synthetic_clip(i, s) for i, s in enumerate(SPEECH)]
    ds = build_phase1_dataset(
        clips,
        contexts=[None, ["Alice said hi."], None, None],
        references=["A caption. Two facts.", None, None, ""],
        facts=[None, None, ["Someone greets the robot."], None],
    )
    assert len(ds) == 4
    row0, row1, row2, row3 = ds[0], ds[1], ds[2], ds[3]
    assert [m["role"] for m in row0["prompt"]] == ["system", "user"]
    assert all(isinstance(m["content"], str) for m in row0["prompt"])
    assert "Keyframes at 0.0, 2.0, 4.0, 6.0, 8.0 s" in row0["prompt"][1]["content"]
    assert row0["reference"] == "A caption. Two facts." and row0["facts"] == ["A caption.", "Two facts."]
    assert row1["reference"] == "The keys are on the table." and row1["context"] == ["Alice said hi."]
    assert "Alice said hi." in row1["prompt"][1]["content"]  # recent memories reach the prompt
    assert row2["facts"] == ["Someone greets the robot."]
    assert row3["reference"] == "Meeting at three." and row3["clip_index"] == 3  # empty caption: transcript
    silent = build_phase1_dataset([synthetic_clip(7)])[0]
    assert silent["reference"] == "" and silent["facts"] == [] and silent["context"] == []
    with pytest.raises(ValueError):
        build_phase1_dataset(clips, references=["only one"])
    assert text_only_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]) == [
        {"role": "user", "content": "hi"}
    ]


@pytest.mark.slow
def test_grpo_lora_trains_on_tiny_qwen3vl(taught_qwen3vl: Path, tmp_path: Path) -> None:
    """The taught tiny model emits the memory JSON; sampling at temperature 1 breaks it now and
    then, so groups have reward variance and GRPO moves the LoRA."""
    import torch
    from safetensors.torch import load_file

    from taskmem_ros.adapters.artifact import read_adapter

    clips = [synthetic_clip(i, s) for i, s in enumerate(SPEECH)]
    dataset = build_phase1_dataset(clips, references=[TAUGHT_MEMORY, None, TAUGHT_MEMORY, None])
    tcfg = TrainingConfig(
        phase1=Phase1Config(
            num_generations=4, batch_size=1, max_new_tokens=48, learning_rate=1e-3, steps=3, temperature=1.0
        )
    )
    result = run_phase1(taught_qwen3vl, tcfg, dataset, output_dir=tmp_path / "p1", embedder=HashEmbedder(), seed=0)

    assert result.adapter_dir is not None and result.model_dir is None
    assert (result.adapter_dir / "adapter_config.json").is_file()
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    names = list(weights)
    assert names and all("language_model" in n and "self_attn" in n for n in names)  # LM attention only
    assert {n.split(".")[-3] for n in names} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    # lora_B starts at zero: any non-zero value means the policy was updated
    assert any(bool(torch.any(w != 0)) for n, w in weights.items() if "lora_B" in n)
    meta = read_adapter(result.adapter_dir)  # loadable by the robot's LoadAdapter path
    assert meta.kind == "lora" and meta.base_model == str(taught_qwen3vl)

    steps = [h for h in result.log_history if "reward" in h]
    assert len(steps) == 3
    for h in steps:
        assert math.isfinite(h["reward"]) and "rewards/format_reward/mean" in h
        assert all(math.isfinite(v) for k, v in h.items() if k.startswith("rewards/"))
    assert any(h["reward_std"] > 0 for h in steps) and any(h["grad_norm"] > 0 for h in steps)
    assert result.metrics["reward_finite"] == 1.0 and "train_runtime" in result.metrics

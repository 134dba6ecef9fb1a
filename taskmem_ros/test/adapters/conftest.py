"""Adapter fixtures: one tiny random Qwen3-VL checkpoint per session, a fresh model per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from adapter_helpers import make_lora

from taskmem_ros.llm.tiny import build_tiny_qwen3vl


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny_qwen3vl"), moe=False)


@pytest.fixture
def model(tiny_dir: Path) -> Any:
    """A fresh load per test (tens of ms): a failing test can never leave an adapter behind."""
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()


@pytest.fixture(scope="session")
def enc(tiny_dir: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    return dict(tok(["The keys are on the kitchen table. The sign says"], return_tensors="pt"))


@pytest.fixture(scope="session")
def lora_a(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora(tiny_dir, tmp_path_factory.mktemp("loras") / "lora_a", seed=1)


@pytest.fixture(scope="session")
def lora_b(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora(tiny_dir, tmp_path_factory.mktemp("loras") / "lora_b", seed=2)

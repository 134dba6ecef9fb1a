"""bitsandbytes stays quiet unless a bnb quantization is configured."""

from __future__ import annotations

import subprocess
import sys

IMPORT_PEFT = "import taskmem_ros, peft; print('imported')"
WITH_BNB = (
    "import taskmem_ros, torch; from taskmem_ros.config import ModelConfig; "
    "from taskmem_ros.llm.transformers_engine import quantization_config; "
    "quantization_config(ModelConfig(quantization='bnb-4bit'), torch.float32); import peft; print('imported')"
)


def _stderr(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True, cwd="/"
    )
    assert "imported" in done.stdout
    return done.stderr


def test_importing_peft_without_bnb_quantization_prints_no_bnb_warning() -> None:
    assert "kernels-community" not in _stderr(IMPORT_PEFT)


def test_bnb_warnings_return_when_bnb_quantization_is_configured() -> None:
    assert "kernels-community" in _stderr(WITH_BNB)

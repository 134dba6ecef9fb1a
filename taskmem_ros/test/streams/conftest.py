"""Real test speech: espeak-ng speaks a sentence, resampled to 16 kHz float32."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.streams.audio import resample


def speak(text: str, tmp: Path, speed: int = 140, rate: int = 16000) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(wav), text], check=True)
    with wave.open(str(wav)) as w:
        src_rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    return resample(x, src_rate, rate)


@pytest.fixture
def espeak(tmp_path: Path) -> Callable[..., np.ndarray]:
    return lambda text, speed=140: speak(text, tmp_path, speed)

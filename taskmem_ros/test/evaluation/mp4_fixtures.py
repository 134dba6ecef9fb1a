"""Small real mp4 files (PyAV) for the loader and media tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_mp4(path: Path, seconds: float, *, fps: int = 10, audio: bool = True, faststart: bool = True) -> Path:
    """mpeg4 160x120 video whose red channel ramps with time, plus a 440 Hz AAC mono track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {})
    vs = out.add_stream("mpeg4", rate=fps)
    vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
    a = out.add_stream("aac", rate=16000) if audio else None
    if a is not None:
        a.layout = "mono"
    n = round(seconds * fps)
    for i in range(n):
        img = np.zeros((120, 160, 3), np.uint8)
        img[:, :, 0] = int(250 * i / max(1, n - 1))
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        out.mux(vs.encode(frame))
    out.mux(vs.encode())
    if a is not None:
        t = np.arange(round(seconds * 16000)) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(samples), 1024):
            af = av.AudioFrame.from_ndarray(samples[None, k : k + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, k
            out.mux(a.encode(af))
        out.mux(a.encode())
    out.close()
    return path

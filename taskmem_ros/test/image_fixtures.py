"""Image payloads for decoder and graph tests (real JPEG encodes, damaged on purpose)."""

from __future__ import annotations

import numpy as np

from taskmem_ros.streams.image_codec import encode_compressed_image


def corrupt_entropy(jpeg: bytes) -> bytes:
    """A JPEG whose markers are intact but whose entropy-coded data is damaged: OpenCV decodes
    it with only a libjpeg warning on stderr (and a garbled image)."""
    b = bytearray(jpeg)
    sos = b.find(b"\xff\xda")
    start = sos + 2 + ((b[sos + 2] << 8) | b[sos + 3])
    mid = (start + len(b)) // 2
    for k in range(mid, mid + 40):
        b[k] = 0xFF if k % 7 == 0 else 0x00
    return bytes(b)


def noise_jpeg() -> bytes:
    rgb = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    return encode_compressed_image(rgb, "jpeg")

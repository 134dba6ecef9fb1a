"""ROS image payloads -> RGB uint8 with numpy/OpenCV only (cv_bridge is not installable here).

Live topics and bag replay share these decoders. The hot path avoids copies: rgb8 without
downscaling is a zero-copy view of the message buffer, and ``max_pixels`` shrinks the image
before colour conversion so keyframes never pay for a full-resolution conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

BufferLike = bytes | bytearray | memoryview | np.ndarray


class ImageDecodeError(ValueError):
    """An image message cannot be turned into pixels; ``reason`` says why, ``kind`` is a short
    code for counters (``frames_rejected_<kind>`` in ``get_stats``)."""

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class _Layout:
    channels: int  # values per pixel in the buffer
    depth: int  # bytes per value
    to_rgb: int | None  # cv2 conversion code after reshaping; None = already RGB
    kind: str = "direct"  # "direct" (resize before converting), "mono16", "yuv", "bayer"


_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, 1, None),
    "bgr8": _Layout(3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": _Layout(4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": _Layout(4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": _Layout(1, 1, cv2.COLOR_GRAY2RGB),
    "8UC1": _Layout(1, 1, cv2.COLOR_GRAY2RGB),
    "8UC3": _Layout(3, 1, cv2.COLOR_BGR2RGB),  # OpenCV convention, as cv_bridge treats it
    "8UC4": _Layout(4, 1, cv2.COLOR_BGRA2RGB),
    "mono16": _Layout(1, 2, cv2.COLOR_GRAY2RGB, "mono16"),
    "16UC1": _Layout(1, 2, cv2.COLOR_GRAY2RGB, "mono16"),
    "rgb16": _Layout(3, 2, None),
    "bgr16": _Layout(3, 2, cv2.COLOR_BGR2RGB),
    "yuv422": _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY, "yuv"),  # ROS yuv422 is UYVY byte order
    "uyvy": _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY, "yuv"),
    "yuyv": _Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2, "yuv"),
    "yuv422_yuy2": _Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2, "yuv"),
    # OpenCV names Bayer patterns by the second row, hence the shifted codes (as in cv_bridge).
    "bayer_rggb8": _Layout(1, 1, cv2.COLOR_BayerBG2RGB, "bayer"),
    "bayer_bggr8": _Layout(1, 1, cv2.COLOR_BayerRG2RGB, "bayer"),
    "bayer_gbrg8": _Layout(1, 1, cv2.COLOR_BayerGR2RGB, "bayer"),
    "bayer_grbg8": _Layout(1, 1, cv2.COLOR_BayerGB2RGB, "bayer"),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)
_BY_LOWER = {k.lower(): k for k in _LAYOUTS}


def bytes_per_pixel(encoding: str) -> int:
    lay = _layout(encoding)
    return lay.channels * lay.depth


def _layout(encoding: str) -> _Layout:
    key = _BY_LOWER.get(str(encoding).strip().lower())
    if key is None:
        raise ImageDecodeError(f"unknown image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    return _LAYOUTS[key]


def _as_bytes_array(data: Any) -> np.ndarray:
    """A flat uint8 view of any buffer (bytes, memoryview, array.array, ndarray) without copying."""
    if isinstance(data, np.ndarray):
        flat = data if data.flags.c_contiguous else np.ascontiguousarray(data)
        return flat.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # e.g. a plain list from a generic deserializer
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def target_size(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """Largest (w, h) with the same aspect ratio and at most ``max_pixels`` pixels."""
    if not max_pixels or width * height <= max_pixels:
        return width, height
    scale = (max_pixels / float(width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def downscale(img: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """INTER_AREA shrink to at most ``max_pixels`` (area averaging keeps small text legible)."""
    h, w = img.shape[:2]
    tw, th = target_size(w, h, max_pixels)
    if (tw, th) == (w, h):
        return img
    return cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)


def validate_raw_image(nbytes: int, width: int, height: int, encoding: str, step: int) -> None:
    """The cheap checks of :func:`decode_raw_image` without touching pixels, so a malformed
    frame is rejected (and counted) even when it would not have been decoded."""
    lay = _layout(encoding)
    width, height, step = int(width), int(height), int(step)
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"zero-size image: width={width}, height={height} (both must be > 0)")
    row_bytes = width * lay.channels * lay.depth
    if step < row_bytes:
        raise ImageDecodeError(
            f"step={step} is smaller than width*bytes_per_pixel={width}*{lay.channels * lay.depth}={row_bytes} "
            f"for encoding {encoding!r}"
        )
    if lay.kind == "yuv" and width % 2:
        raise ImageDecodeError(f"{encoding!r} needs an even width, got width={width}")
    need = height * step
    if nbytes < need:
        raise ImageDecodeError(
            f"data has {nbytes} bytes, expected at least height*step={height}*{step}={need} "
            f"for a {width}x{height} {encoding!r} image"
        )


def decode_raw_image(
    data: BufferLike,
    width: int,
    height: int,
    encoding: str,
    step: int,
    is_bigendian: bool = False,
    *,
    max_pixels: int | None = None,
) -> np.ndarray:
    """sensor_msgs/Image fields -> RGB uint8 (H, W, 3), downscaled to ``max_pixels`` if given.

    The result may be a read-only view of ``data`` (rgb8, no downscale): copy it before the
    buffer is reused. 16-bit mono/depth is stretched by the frame's maximum so it is visible.
    """
    lay = _layout(encoding)
    width, height, step = int(width), int(height), int(step)
    buf = _as_bytes_array(data)
    validate_raw_image(buf.size, width, height, encoding, step)
    row_bytes = width * lay.channels * lay.depth
    need = height * step
    rows = buf[:need].reshape(height, step)[:, :row_bytes]  # drops row padding, still a view
    img: np.ndarray
    if lay.depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        rows16 = rows.view(dtype)
        if not dtype.isnative or not rows16.flags.aligned:
            rows16 = rows16.astype(np.uint16)  # cv2 needs native byte order and aligned rows
        img = rows16.reshape(height, width, lay.channels)
        if lay.kind == "mono16":
            peak = int(img.max())
            img = cv2.convertScaleAbs(img, alpha=255.0 / peak if peak else 0.0)
        else:
            img = (img >> 8).astype(np.uint8)
    else:
        img = rows.reshape(height, width, lay.channels)
    if lay.channels == 1 and img.ndim == 3:
        img = img[:, :, 0]
    if lay.kind in ("direct", "mono16"):
        img = downscale(img, max_pixels)  # cheaper to convert the small image
        return img if lay.to_rgb is None else cv2.cvtColor(img, lay.to_rgb)
    assert lay.to_rgb is not None
    return downscale(cv2.cvtColor(img, lay.to_rgb), max_pixels)


def _jpeg_size(buf: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF marker, walking the marker segments (cheap: it jumps)."""
    b = buf.data
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        seg_len = (b[i + 2] << 8) | b[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return (b[i + 7] << 8) | b[i + 8], (b[i + 5] << 8) | b[i + 6]
        i += 2 + seg_len
    return None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_COMPRESSED_BYTES = 67  # the smallest valid PNG (1x1); any JPEG is larger
_TAIL = 32  # encoders may pad a few bytes after the end marker


def _png_size(buf: np.ndarray) -> tuple[int, int] | None:
    head = buf[:24].tobytes()
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def validate_compressed_image(data: BufferLike, format: str = "jpeg") -> str:
    """Cheap container check of a CompressedImage payload (markers, size; no pixel decoding),
    run on every frame so corrupt non-keyframes are counted too. Returns ``"jpeg"``, ``"png"``
    or ``"depth"``; raises :class:`ImageDecodeError` with a ``kind`` for the counters."""
    buf = _as_bytes_array(data)
    fmt = str(format).lower()
    if buf.size == 0:
        raise ImageDecodeError(f"empty compressed image (format={format!r})", "empty")
    if "compresseddepth" in fmt:  # image_transport's 12-byte header before a 16-bit PNG
        if buf.size < 12 + MIN_COMPRESSED_BYTES or buf[12:20].tobytes() != PNG_SIGNATURE:
            raise ImageDecodeError(f"compressedDepth payload is not a PNG ({buf.size} bytes)", "not_an_image")
        return "depth"
    if buf.size < MIN_COMPRESSED_BYTES:
        raise ImageDecodeError(f"compressed image of {buf.size} bytes is too small (format={format!r})", "too_small")
    tail = buf[-_TAIL:]
    if buf[0] == 0xFF and buf[1] == 0xD8 and buf[2] == 0xFF:
        if not np.any((tail[:-1] == 0xFF) & (tail[1:] == 0xD9)):
            raise ImageDecodeError(f"truncated JPEG: no end-of-image marker ({buf.size} bytes)", "truncated")
        size = _jpeg_size(buf)
        if size is None or size[0] == 0 or size[1] == 0:
            raise ImageDecodeError(f"JPEG without a valid frame header ({buf.size} bytes)", "corrupt")
        return "jpeg"
    if buf[:8].tobytes() == PNG_SIGNATURE:
        if tail.tobytes().find(b"IEND") < 0:
            raise ImageDecodeError(f"truncated PNG: no IEND chunk ({buf.size} bytes)", "truncated")
        size = _png_size(buf)
        if size is None or size[0] == 0 or size[1] == 0:
            raise ImageDecodeError(f"PNG without a valid IHDR chunk ({buf.size} bytes)", "corrupt")
        return "png"
    raise ImageDecodeError(
        f"not a JPEG or PNG (first bytes {buf[:4].tobytes().hex()}, {buf.size} bytes, format={format!r})",
        "not_an_image",
    )


def _decode_jpeg(buf: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """Strict JPEG decode with libjpeg-turbo (simplejpeg): a payload that decodes only with
    libjpeg warnings (corrupt data, premature end) is an error, where OpenCV's imdecode prints
    the warning to stderr and returns a damaged image. Decodes at a reduced DCT scale when
    ``max_pixels`` allows (like OpenCV's IMREAD_REDUCED_*)."""
    import simplejpeg

    min_w = min_h = 0
    if max_pixels:
        size = _jpeg_size(buf)
        if size is not None:
            tw, th = target_size(size[0], size[1], max_pixels)
            min_w, min_h = tw, th
    try:
        rgb = simplejpeg.decode_jpeg(buf.tobytes(), colorspace="RGB", min_width=min_w, min_height=min_h, strict=True)
    except ValueError as exc:
        raise ImageDecodeError(f"corrupt JPEG ({buf.size} bytes): {exc}", "corrupt") from exc
    return downscale(rgb, max_pixels)


def decode_compressed_image(data: BufferLike, format: str = "jpeg", *, max_pixels: int | None = None) -> np.ndarray:
    """sensor_msgs/CompressedImage -> RGB uint8; JPEG is decoded strictly, at reduced size when allowed."""
    container = validate_compressed_image(data, format)
    buf = _as_bytes_array(data)
    if container == "jpeg":
        return _decode_jpeg(buf, max_pixels)
    if container == "depth":
        depth = cv2.imdecode(buf[12:], cv2.IMREAD_UNCHANGED)
        if depth is None or depth.ndim != 2:
            raise ImageDecodeError(f"undecodable compressedDepth image ({buf.size} bytes)", "corrupt")
        peak = int(depth.max())
        gray = cv2.convertScaleAbs(depth, alpha=255.0 / peak if peak else 0.0)
        return cv2.cvtColor(downscale(gray, max_pixels), cv2.COLOR_GRAY2RGB)
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageDecodeError(f"undecodable PNG ({buf.size} bytes): {exc}", "corrupt") from exc
    if bgr is None or bgr.size == 0:
        raise ImageDecodeError(f"corrupt PNG ({buf.size} bytes, format={format!r})", "corrupt")
    return cv2.cvtColor(downscale(bgr, max_pixels), cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class RawImage:
    """The sensor_msgs/Image fields a recorder or test needs."""

    data: bytes
    width: int
    height: int
    encoding: str
    step: int
    is_bigendian: bool = False


def encode_raw_image(
    rgb: np.ndarray, encoding: str = "rgb8", *, padding: int = 0, is_bigendian: bool = False
) -> RawImage:
    """RGB uint8 -> sensor_msgs/Image payload (``padding`` extra bytes per row, for tests)."""
    lay = _layout(encoding)
    enc = _BY_LOWER[encoding.lower()]
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    pixels: np.ndarray
    if enc in ("rgb8",):
        pixels = rgb
    elif enc in ("bgr8", "8UC3"):
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif enc == "rgba8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    elif enc in ("bgra8", "8UC4"):
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    elif enc in ("mono8", "8UC1"):
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif enc in ("mono16", "16UC1"):
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    elif enc == "rgb16":
        pixels = rgb.astype(np.uint16) * 257
    elif enc == "bgr16":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    elif enc in ("yuv422", "uyvy"):
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY)
    elif enc in ("yuyv", "yuv422_yuy2"):
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2)
    else:  # bayer: keep one colour per pixel following the pattern's 2x2 tile
        pattern = enc[len("bayer_") : len("bayer_") + 4]
        idx = {"r": 0, "g": 1, "b": 2}
        pixels = np.empty((h, w), np.uint8)
        for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            pixels[dy::2, dx::2] = rgb[dy::2, dx::2, idx[pattern[k]]]
    if lay.depth == 2:
        pixels = pixels.astype(">u2" if is_bigendian else "<u2")
    row = pixels.reshape(h, -1).view(np.uint8)
    if padding:
        row = np.concatenate([row, np.full((h, padding), 0xAB, np.uint8)], axis=1)
    return RawImage(row.tobytes(), w, h, enc, row.shape[1], is_bigendian and lay.depth == 2)


def encode_compressed_image(rgb: np.ndarray, format: str = "jpeg", quality: int = 90) -> bytes:
    """RGB uint8 -> JPEG/PNG bytes (sensor_msgs/CompressedImage.data)."""
    ext = ".png" if "png" in format.lower() else ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, enc = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageDecodeError(f"cannot encode {rgb.shape} image as {format!r}")
    return enc.tobytes()

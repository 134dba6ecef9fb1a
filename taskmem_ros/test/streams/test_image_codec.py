"""Image payload decoding: every encoding, row padding, byte order, and every bad-input error."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from image_fixtures import corrupt_entropy, noise_jpeg

from taskmem_ros.streams.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    bytes_per_pixel,
    decode_compressed_image,
    decode_raw_image,
    encode_compressed_image,
    encode_raw_image,
    validate_compressed_image,
)


@pytest.fixture(scope="module")
def smooth() -> np.ndarray:
    """A smooth colour image: chroma subsampling (yuv422) and Bayer demosaicing stay near-lossless."""
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (0, 0), 3)


def _expected(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, float]:
    """What decoding should give back, and the mean abs error allowed for lossy layouts."""
    if encoding in ("mono8", "8UC1", "mono16", "16UC1"):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if encoding in ("mono16", "16UC1"):  # stretched by the frame maximum
            gray = np.round(gray.astype(np.float64) * 255.0 / gray.max()).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), 0.6
    if encoding.startswith(("yuv", "uyvy", "yuyv")):
        return rgb, 2.0
    if encoding.startswith("bayer"):
        return rgb, 2.0
    return rgb, 0.0


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("padding", [0, 5])
def test_every_encoding_round_trips_with_and_without_row_padding(smooth, encoding, padding):
    raw = encode_raw_image(smooth, encoding, padding=padding)
    assert raw.step == 64 * bytes_per_pixel(encoding) + padding and len(raw.data) == 48 * raw.step
    out = decode_raw_image(raw.data, raw.width, raw.height, raw.encoding, raw.step, raw.is_bigendian)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    expected, tol = _expected(smooth, encoding)
    assert np.abs(out.astype(int) - expected.astype(int)).mean() <= tol


def test_padding_bytes_never_leak_into_pixels(smooth):
    plain = encode_raw_image(smooth, "bgr8")
    padded = encode_raw_image(smooth, "bgr8", padding=13)
    assert padded.step == plain.step + 13
    a = decode_raw_image(plain.data, 64, 48, "bgr8", plain.step)
    b = decode_raw_image(padded.data, 64, 48, "bgr8", padded.step)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, smooth)


@pytest.mark.parametrize(("encoding", "channels"), [("mono16", 1), ("16UC1", 1), ("rgb16", 3)])
@pytest.mark.parametrize("padding", [0, 3])
def test_big_endian_16_bit_matches_little_endian(encoding, channels, padding):
    values = (np.arange(24 * 32 * channels, dtype=np.uint32) * 2731 % 65536).astype(np.uint16)
    values = values.reshape(24, 32 * channels)

    def payload(order: str) -> bytes:
        rows = values.astype(order).view(np.uint8)
        return np.concatenate([rows, np.zeros((24, padding), np.uint8)], axis=1).tobytes()

    step = 32 * channels * 2 + padding
    le, be = payload("<u2"), payload(">u2")
    assert le != be
    out_le = decode_raw_image(le, 32, 24, encoding, step, False)
    out_be = decode_raw_image(be, 32, 24, encoding, step, True)
    np.testing.assert_array_equal(out_le, out_be)
    if channels == 3:  # colour keeps the high byte
        np.testing.assert_array_equal(out_le, (values.reshape(24, 32, 3) >> 8).astype(np.uint8))


def test_depth_image_is_stretched_to_visible_range():
    depth = np.array([[0, 500], [1000, 2000]], dtype="<u2")  # millimetres: far below 8-bit scale
    out = decode_raw_image(depth.tobytes(), 2, 2, "16UC1", 4)
    assert out[1, 1, 0] == 255 and out[0, 0, 0] == 0 and 120 <= out[1, 0, 0] <= 130


def test_rgb8_is_a_zero_copy_view_of_the_message_buffer(smooth):
    buf = bytearray(encode_raw_image(smooth, "rgb8").data)
    out = decode_raw_image(buf, 64, 48, "rgb8", 64 * 3)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: array.array("B", b), np.frombuffer])
def test_accepts_every_buffer_type_messages_use(smooth, wrap):
    raw = encode_raw_image(smooth, "bgr8")
    out = decode_raw_image(wrap(raw.data), 64, 48, "bgr8", raw.step)
    np.testing.assert_array_equal(out, smooth)


def test_max_pixels_downscales_keeping_aspect_ratio():
    big = np.zeros((720, 1280, 3), np.uint8)
    cv2.putText(big, "A", (100, 600), cv2.FONT_HERSHEY_SIMPLEX, 20, (255, 255, 255), 40)
    for encoding in ("rgb8", "bgr8", "yuv422", "mono8"):
        raw = encode_raw_image(big, encoding, padding=64)
        out = decode_raw_image(raw.data, 1280, 720, encoding, raw.step, max_pixels=640 * 360)
        assert out.shape == (360, 640, 3)
        assert out[:, :, 1].max() > 200  # the glyph survives area averaging


# -- bad input -------------------------------------------------------------------------------
def test_short_data_is_rejected_with_sizes(smooth):
    raw = encode_raw_image(smooth, "rgb8")
    with pytest.raises(ImageDecodeError, match=r"data has 9215 bytes, expected at least height\*step=48\*192=9216"):
        decode_raw_image(raw.data[:-1], 64, 48, "rgb8", raw.step)


@pytest.mark.parametrize("step", [0, 191, -5])
def test_step_smaller_than_a_row_is_rejected(smooth, step):
    raw = encode_raw_image(smooth, "rgb8")
    with pytest.raises(ImageDecodeError, match=r"step=.* is smaller than width\*bytes_per_pixel=64\*3=192"):
        decode_raw_image(raw.data, 64, 48, "rgb8", step)


def test_unknown_encoding_lists_the_supported_ones():
    with pytest.raises(ImageDecodeError, match=r"unknown image encoding 'hsv8'; supported: rgb8, bgr8"):
        decode_raw_image(b"\0" * 12, 2, 2, "hsv8", 6)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (0, 0), (-1, 4)])
def test_zero_size_is_rejected(width, height):
    with pytest.raises(ImageDecodeError, match="zero-size image"):
        decode_raw_image(b"\0" * 300, width, height, "rgb8", max(width, 1) * 3)


def test_odd_width_yuv_is_rejected():
    with pytest.raises(ImageDecodeError, match="even width"):
        decode_raw_image(b"\0" * 60, 3, 10, "yuv422", 6)


def test_encoding_names_are_case_insensitive(smooth):
    raw = encode_raw_image(smooth, "bgr8")
    np.testing.assert_array_equal(decode_raw_image(raw.data, 64, 48, "BGR8", raw.step), smooth)


# -- compressed ------------------------------------------------------------------------------
def test_jpeg_and_png_round_trip(smooth):
    png = encode_compressed_image(smooth, "png")
    np.testing.assert_array_equal(decode_compressed_image(png, "png"), smooth)
    jpg = encode_compressed_image(smooth, "jpeg", quality=95)
    out = decode_compressed_image(jpg, "rgb8; jpeg compressed bgr8")
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth.astype(int)).mean() < 4


def test_jpeg_downscaled_decode_respects_max_pixels():
    frame = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 4)
    jpg = encode_compressed_image(frame)
    out = decode_compressed_image(jpg, "jpeg", max_pixels=640 * 360)
    assert out.shape == (360, 640, 3)
    small = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - small.astype(int)).mean() < 6


def test_compressed_depth_png_decodes():
    depth = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 3).astype(np.uint16)
    ok, png = cv2.imencode(".png", depth)
    assert ok
    out = decode_compressed_image(b"\0" * 12 + png.tobytes(), "16UC1; compressedDepth png")
    assert out.shape == (48, 64, 3) and out[-1, -1, 0] == 255 and out[0, 0, 0] == 0


def test_corrupt_jpeg_is_rejected(smooth):
    jpg = bytearray(encode_compressed_image(smooth))
    garbage = bytes(jpg[:4]) + bytes(np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8)) + b"\xff\xd9"
    with pytest.raises(ImageDecodeError, match="JPEG without a valid frame header") as err:
        decode_compressed_image(garbage, "jpeg")
    assert err.value.kind == "corrupt"


def test_truncated_jpeg_is_rejected(smooth):
    jpg = encode_compressed_image(smooth)
    with pytest.raises(ImageDecodeError, match="truncated JPEG"):
        decode_compressed_image(jpg[: len(jpg) // 2], "jpeg")


@pytest.mark.parametrize(
    "payload", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"\xff\xd8\xff", b"\xff\xd8\xff\xd9"]
)
def test_undecodable_payloads_are_rejected(payload):
    with pytest.raises(ImageDecodeError):
        decode_compressed_image(payload, "png")


# -- container checks on every compressed frame; strict decoding of keyframes ------------------
@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"", "empty"),
        (b"\xff\xd8\xff\xe0garbage", "too_small"),
        (bytes(200), "not_an_image"),
        (b"GIF89a" + bytes(200), "not_an_image"),
        (noise_jpeg()[:-60], "truncated"),
        (b"\xff\xd8\xff\xe0" + bytes(200) + b"\xff\xd9", "corrupt"),  # no frame header
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "truncated"),  # no IEND
    ],
)
def test_cheap_container_check_names_the_fault(payload: bytes, kind: str) -> None:
    with pytest.raises(ImageDecodeError) as err:
        validate_compressed_image(payload, "jpeg")
    assert err.value.kind == kind, err.value


def test_container_check_accepts_real_jpeg_and_png() -> None:
    rgb = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    assert validate_compressed_image(encode_compressed_image(rgb, "jpeg"), "jpeg") == "jpeg"
    assert validate_compressed_image(encode_compressed_image(rgb, "png"), "png") == "png"


def test_jpeg_with_libjpeg_warnings_is_rejected_not_kept() -> None:
    bad = corrupt_entropy(noise_jpeg())
    assert cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV would keep it
    assert validate_compressed_image(bad, "jpeg") == "jpeg"  # markers intact: only decoding can tell
    with pytest.raises(ImageDecodeError, match="Corrupt JPEG data") as err:
        decode_compressed_image(bad, "jpeg")
    assert err.value.kind == "corrupt"


def test_corrupt_non_keyframes_are_counted_without_decoding() -> None:
    """The container check runs when the message is converted, before the segmenter decides
    whether the frame is a keyframe: garbage between keyframes is counted too."""
    from types import SimpleNamespace

    from taskmem_ros.streams.messages import compressed_source, count_rejection

    def msg(data: bytes, sec: int) -> SimpleNamespace:
        stamp = SimpleNamespace(sec=sec, nanosec=0)
        return SimpleNamespace(data=data, format="jpeg", header=SimpleNamespace(stamp=stamp, frame_id="cam"))

    counts: dict[str, int] = {}
    decoded = []
    for data in (noise_jpeg(), bytes(500), noise_jpeg()[:-60]):
        try:
            stamp, _decode, _ = compressed_source(msg(data, 5))
            decoded.append(stamp)
        except ImageDecodeError as exc:
            count_rejection(counts, exc)
    assert decoded == [5 * 10**9]
    assert counts == {"frames_rejected": 2, "frames_rejected_not_an_image": 1, "frames_rejected_truncated": 1}


def test_reduced_size_jpeg_decode_respects_max_pixels() -> None:
    rgb = (np.random.default_rng(2).random((480, 640, 3)) * 255).astype(np.uint8)
    out = decode_compressed_image(encode_compressed_image(rgb, "jpeg"), "jpeg", max_pixels=160 * 120)
    assert out.shape[0] * out.shape[1] <= 160 * 120 and out.shape[2] == 3 and out.dtype == np.uint8
    assert abs(out.shape[1] / out.shape[0] - 640 / 480) < 0.05

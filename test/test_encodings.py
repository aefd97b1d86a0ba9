"""Camera pixel formats -> 8-bit colour (runtime/encodings.py), checked against layouts built by hand.

The expected bytes here are written from the sensor_msgs definitions (UYVY = U Y0 V Y1,
YUYV = Y0 U Y1 V, a Bayer name lists the colours of the 2x2 cell row by row, 16-bit
samples in the message's byte order), not produced by the module's own encoder, so a
wrong OpenCV code or byte order fails here even where encode and decode agree.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hrpose_ros.runtime.encodings import PIXEL_FORMATS, EncodingError, decode_image, encode_image

LOSSLESS = ["bgr8", "rgb8", "bgra8", "rgba8", "rgb16", "bgr16", "rgba16", "bgra16"]
YUV = {"yuv422": "uyvy", "uyvy": "uyvy", "yuv422_yuy2": "yuyv", "yuyv": "yuyv"}
BAYER = ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"]


@pytest.fixture
def noise() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)


@pytest.fixture
def smooth() -> np.ndarray:
    """A natural-looking image (smooth colour gradients), where chroma subsampling loses little."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float64)
    bgr = np.stack([60 + 2 * x, 40 + 3 * y, 200 - 1.5 * x - y], axis=2)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def _as_bgr(image: np.ndarray, layout: str) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if layout == "rgb8" else image


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("encoding", LOSSLESS)
def test_colour_encodings_round_trip_exactly(noise, encoding, big_endian):
    rows = encode_image(noise, encoding, big_endian)
    assert rows.shape == (6, PIXEL_FORMATS[encoding].row_bytes(8))
    image, layout = decode_image(rows, 8, encoding, big_endian)
    assert layout in ("bgr8", "rgb8") and image.shape == (6, 8, 3)
    np.testing.assert_array_equal(_as_bgr(image, layout), noise)


@pytest.mark.parametrize("encoding", ["mono8", "mono16"])
def test_mono_encodings_give_three_equal_channels(noise, encoding):
    grey = cv2.cvtColor(noise, cv2.COLOR_BGR2GRAY)
    image, layout = decode_image(encode_image(noise, encoding), 8, encoding)
    assert layout == "bgr8"
    for c in range(3):
        np.testing.assert_array_equal(image[:, :, c], grey)


def test_rgb8_and_bgr8_come_back_as_views_without_a_copy(noise):
    rows = encode_image(noise, "bgr8")
    image, _ = decode_image(rows, 8, "bgr8")
    assert np.shares_memory(image, rows)


def test_sixteen_bit_samples_follow_the_byte_order_and_scale_by_255_over_65535():
    # one mono16 pixel per value; bytes written by hand in each byte order
    values = np.array([0, 257, 0x1234, 32768, 65535], dtype=np.int64)
    big = np.array([[b for v in values for b in (v >> 8, v & 0xFF)]], dtype=np.uint8)
    little = np.array([[b for v in values for b in (v & 0xFF, v >> 8)]], dtype=np.uint8)
    expected = np.floor(values * 255 / 65535 + 0.5).astype(np.uint8)  # cv_bridge: v * 255/65535, rounded
    for rows, big_endian in ((big, True), (little, False)):
        image, _ = decode_image(rows, len(values), "mono16", big_endian)
        np.testing.assert_array_equal(image[0, :, 0], expected)
    wrong, _ = decode_image(big, len(values), "mono16", big_endian=False)
    assert wrong[0, 2, 0] == round(0x3412 * 255 / 65535)  # the bytes read the other way round


@pytest.mark.parametrize("encoding", sorted(YUV))
def test_yuv422_byte_order_puts_each_luma_byte_at_its_pixel(encoding):
    """Y0 = 200 (pixel 0) and Y1 = 50 (pixel 1), neutral chroma U = V = 128."""
    cell = [128, 200, 128, 50] if YUV[encoding] == "uyvy" else [200, 128, 50, 128]
    rows = np.array([cell * 2] * 2, dtype=np.uint8)  # 2 rows of 4 pixels
    image, layout = decode_image(rows, 4, encoding)
    assert layout == "bgr8"
    # BT.601 video range, as OpenCV's YUV 4:2:2 conversion: (Y - 16) * 255 / 219, grey
    np.testing.assert_allclose(image[:, 0].astype(float), (200 - 16) * 255 / 219, atol=1.0)
    np.testing.assert_allclose(image[:, 1].astype(float), (50 - 16) * 255 / 219, atol=1.0)


@pytest.mark.parametrize("encoding", sorted(YUV))
def test_yuv422_of_a_smooth_image_is_close_to_it(smooth, encoding):
    image, _ = decode_image(encode_image(smooth, encoding), 64, encoding)
    assert np.abs(image.astype(int) - smooth).mean() < 2.0


@pytest.mark.parametrize("encoding", BAYER)
def test_bayer_pattern_names_the_colours_of_the_cell(encoding):
    """A uniform colour mosaicked by hand: each cell position holds the colour the name gives it."""
    bgr = {"b": 10, "g": 100, "r": 200}
    pattern = encoding.split("_")[1][:4]
    mosaic = np.empty((8, 10), np.uint8)
    for cell, colour in enumerate(pattern):
        dy, dx = divmod(cell, 2)
        mosaic[dy::2, dx::2] = bgr[colour]
    image, layout = decode_image(mosaic, 10, encoding)
    assert layout == "bgr8"
    np.testing.assert_array_equal(image[2:-2, 2:-2].reshape(-1, 3), np.tile([10, 100, 200], (4 * 6, 1)))


@pytest.mark.parametrize("encoding", BAYER)
def test_bayer_of_a_smooth_image_is_close_to_it(smooth, encoding):
    image, _ = decode_image(encode_image(smooth, encoding), 64, encoding)
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(image[inner].astype(int) - smooth[inner]).mean() < 2.0


def test_padded_rows_are_read_through_a_strided_view(noise):
    rows = encode_image(noise, "rgb16", big_endian=True)
    padded = np.zeros((6, rows.shape[1] + 6), np.uint8)
    padded[:, : rows.shape[1]] = rows
    image, layout = decode_image(padded[:, : rows.shape[1]], 8, "rgb16", big_endian=True)
    np.testing.assert_array_equal(_as_bgr(image, layout), noise)


def test_unknown_encoding_names_it_and_the_supported_ones(noise):
    with pytest.raises(EncodingError, match=r"unsupported image encoding 'nv21'.*yuv422_yuy2"):
        decode_image(encode_image(noise, "bgr8"), 8, "nv21")
    with pytest.raises(EncodingError, match="nv21"):
        encode_image(noise, "nv21")


@pytest.mark.parametrize(
    ("encoding", "rows", "width", "fragment"),
    [
        ("yuyv", np.zeros((2, 6), np.uint8), 3, "even width"),
        ("bayer_rggb8", np.zeros((1, 4), np.uint8), 4, "2x2"),
        ("rgb8", np.zeros((2, 5), np.uint8), 2, r"\(H, 6\)"),
        ("mono16", np.zeros((2, 4), np.uint16), 2, "uint8"),
    ],
)
def test_rows_that_do_not_fit_the_format_are_refused_with_a_reason(encoding, rows, width, fragment):
    with pytest.raises(EncodingError, match=fragment):
        decode_image(rows, width, encoding)

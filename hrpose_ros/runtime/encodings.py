"""Camera pixel formats (sensor_msgs encodings) <-> the 8-bit colour image the network takes.

Why here: real camera drivers publish YUV 4:2:2 (USB/UVC through usb_cam or
v4l2_camera), raw Bayer mosaics (industrial cameras) and 16-bit images, while the
network wants 8-bit colour. The conversions are OpenCV's, as in ``cv_bridge``
(``yuv422`` = UYVY, ``yuv422_yuy2`` = YUYV, ``bayer_rggb8`` -> ``COLOR_BayerRGGB2BGR``,
16 -> 8 bit scaled by 255/65535 with rounding), so a frame gives the same image here as
through ``cv_bridge`` to ``bgr8``. No ROS types: the node passes the rows of
``Image.data`` (row padding already cut off), the player and the tests the other way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["PIXEL_FORMATS", "EncodingError", "PixelFormat", "decode_image", "encode_image", "pixel_format"]


class EncodingError(ValueError):
    """An encoding that is not supported, or pixel rows that do not fit it."""


@dataclass(frozen=True)
class PixelFormat:
    """How one encoding lays out a pixel, and how it becomes 8-bit colour.

    ``samples`` per pixel (a YUV 4:2:2 pixel carries 2: Y and U or V) of ``sample_bytes``
    each; ``colour`` is the 8-bit layout it is scaled to (16-bit) or the layout itself;
    ``cv_code`` the OpenCV conversion to BGR (None: none needed).
    """

    samples: int
    sample_bytes: int
    colour: str
    cv_code: int | None = None

    def row_bytes(self, width: int) -> int:
        """Bytes of one row of ``width`` pixels, without padding."""
        return int(width) * self.samples * self.sample_bytes


PIXEL_FORMATS: dict[str, PixelFormat] = {
    "rgb8": PixelFormat(3, 1, "rgb8"),
    "bgr8": PixelFormat(3, 1, "bgr8"),
    "rgba8": PixelFormat(4, 1, "rgba8"),
    "bgra8": PixelFormat(4, 1, "bgra8"),
    "mono8": PixelFormat(1, 1, "mono8", cv2.COLOR_GRAY2BGR),
    "yuv422": PixelFormat(2, 1, "bgr8", cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": PixelFormat(2, 1, "bgr8", cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": PixelFormat(2, 1, "bgr8", cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": PixelFormat(2, 1, "bgr8", cv2.COLOR_YUV2BGR_YUY2),
    "bayer_rggb8": PixelFormat(1, 1, "bgr8", cv2.COLOR_BayerRGGB2BGR),
    "bayer_bggr8": PixelFormat(1, 1, "bgr8", cv2.COLOR_BayerBGGR2BGR),
    "bayer_gbrg8": PixelFormat(1, 1, "bgr8", cv2.COLOR_BayerGBRG2BGR),
    "bayer_grbg8": PixelFormat(1, 1, "bgr8", cv2.COLOR_BayerGRBG2BGR),
    "rgb16": PixelFormat(3, 2, "rgb8"),
    "bgr16": PixelFormat(3, 2, "bgr8"),
    "rgba16": PixelFormat(4, 2, "rgba8"),
    "bgra16": PixelFormat(4, 2, "bgra8"),
    "mono16": PixelFormat(1, 2, "mono8", cv2.COLOR_GRAY2BGR),
}
"""Every accepted encoding (sensor_msgs names, with the ``uyvy`` / ``yuyv`` aliases)."""

_TO_8BIT = 255.0 / 65535.0
_LOW_BYTE = 128
"""encode_image's 16-bit sample is ``v * 256 + 128`` = ``257 v + (128 - v)``: within 0.5 of the
exact inverse ``257 v`` of the scaling, so it decodes to ``v`` again, and its two bytes differ
(unlike ``257 v``), so a frame read in the wrong byte order does not look right."""
_ENCODE_CODES = {
    "rgb8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_BGR2RGBA,
    "bgra8": cv2.COLOR_BGR2BGRA,
    "mono8": cv2.COLOR_BGR2GRAY,
    "yuv422": cv2.COLOR_BGR2YUV_UYVY,
    "uyvy": cv2.COLOR_BGR2YUV_UYVY,
    "yuv422_yuy2": cv2.COLOR_BGR2YUV_YUY2,
    "yuyv": cv2.COLOR_BGR2YUV_YUY2,
}
_BGR_INDEX = {"b": 0, "g": 1, "r": 2}


def pixel_format(encoding: str) -> PixelFormat:
    """The layout of ``encoding``; ``EncodingError`` naming the supported ones otherwise."""
    fmt = PIXEL_FORMATS.get(encoding)
    if fmt is None:
        raise EncodingError(
            f"unsupported image encoding '{encoding}' (supported: {', '.join(PIXEL_FORMATS)})"
        )
    return fmt


def _check_size(encoding: str, width: int, height: int) -> None:
    if PIXEL_FORMATS[encoding].samples == 2 and width % 2:
        raise EncodingError(f"{encoding} images need an even width (pixel pairs share U and V), got {width}")
    if encoding.startswith("bayer_") and (width < 2 or height < 2):
        raise EncodingError(
            f"{encoding} images need at least 2x2 pixels (one mosaic cell), got {width}x{height}"
        )


def decode_image(
    rows: np.ndarray, width: int, encoding: str, big_endian: bool = False
) -> tuple[np.ndarray, str]:
    """Pixel rows of ``encoding`` -> an (H, W, 3) uint8 image in ``bgr8`` or ``rgb8``.

    Args:
        rows: (H, row_bytes) uint8, one image row per line, padding already cut off
            (``PixelFormat.row_bytes``); may be a read-only view of a message buffer.
        width: pixels per row.
        big_endian: byte order of 16-bit samples (``Image.is_bigendian``).

    Returns:
        (image, layout): rgb8/bgr8 input comes back as a view of ``rows`` (no copy); the
        rest is converted into a new array.

    Raises:
        EncodingError: unknown encoding, rows of the wrong width, or a size the format
            cannot have (odd width for YUV 4:2:2, less than one Bayer cell).
    """
    fmt = pixel_format(encoding)
    rows = np.asarray(rows)
    height = rows.shape[0] if rows.ndim == 2 else 0
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != fmt.row_bytes(width):
        raise EncodingError(
            f"{encoding} rows of {width} pixels must be uint8 (H, {fmt.row_bytes(width)}), "
            f"got {rows.dtype} {rows.shape}"
        )
    _check_size(encoding, width, height)
    if fmt.sample_bytes == 2:
        samples = rows.view(">u2" if big_endian else "<u2").astype(np.uint16, copy=False)  # native order
        rows = cv2.convertScaleAbs(samples, alpha=_TO_8BIT)
    pixels = rows.reshape(height, width, fmt.samples) if fmt.samples > 1 else rows.reshape(height, width)
    if fmt.cv_code is not None:
        return cv2.cvtColor(pixels, fmt.cv_code), "bgr8"
    if fmt.samples == 4:
        return np.ascontiguousarray(pixels[:, :, :3]), fmt.colour[:3] + "8"
    return pixels, fmt.colour


def encode_image(bgr: np.ndarray, encoding: str, big_endian: bool = False) -> np.ndarray:
    """An (H, W, 3) uint8 BGR image -> (H, row_bytes) uint8 rows of ``encoding``.

    What a camera of that format would send for this scene (the player, the tests):
    OpenCV's BGR -> YUV 4:2:2, a Bayer mosaic sampling the named colour at each cell
    position, 16-bit samples that decode to the 8-bit values again, in the given byte order.
    """
    fmt = pixel_format(encoding)
    bgr = np.asarray(bgr)
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise EncodingError(f"encode_image needs an (H, W, 3) uint8 BGR image, got {bgr.dtype} {bgr.shape}")
    height, width = bgr.shape[:2]
    _check_size(encoding, width, height)
    base = fmt.colour if fmt.sample_bytes == 2 else encoding
    if encoding.startswith("bayer_"):
        pattern = encoding[len("bayer_") : -1]
        pixels = np.empty((height, width), np.uint8)
        for cell, colour in enumerate(pattern):
            dy, dx = divmod(cell, 2)
            pixels[dy::2, dx::2] = bgr[dy::2, dx::2, _BGR_INDEX[colour]]
    elif base in _ENCODE_CODES:
        pixels = cv2.cvtColor(bgr, _ENCODE_CODES[base])
    else:
        pixels = bgr
    if fmt.sample_bytes == 2:
        wide = pixels.astype(np.uint16) * np.uint16(256) + np.uint16(_LOW_BYTE)
        pixels = wide.astype(">u2" if big_endian else "<u2").view(np.uint8)
    return np.ascontiguousarray(pixels).reshape(height, fmt.row_bytes(width))

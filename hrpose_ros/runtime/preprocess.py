"""Camera image -> normalised network input, with the matching pixel mapping.

Any image size is letterboxed (aspect kept, padded) or resized (aspect changed) to the
network's fixed (W, H). The pixel mapping follows the OpenCV centre convention of
docs/architecture.md, so keypoints found in the network input map back exactly to
the original image and PnP can run with the original intrinsics and distortion.
Buffers are preallocated per input image size: no allocations per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hrpose_ros.geometry.camera import scale_intrinsics

__all__ = ["ENCODINGS", "ImageTransform", "PreprocessError", "Preprocessor"]

ENCODINGS: dict[str, tuple[int, int, int] | None] = {
    "bgr8": (2, 1, 0),
    "rgb8": (0, 1, 2),
    "bgra8": (2, 1, 0),
    "rgba8": (0, 1, 2),
    "mono8": None,
}
"""Supported image encodings (sensor_msgs names) -> source channel of R, G, B (None: grey)."""

_CHANNELS = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1}
_MODES = ("letterbox", "resize")


class PreprocessError(ValueError):
    """The image, its encoding or the preprocessing options are unusable."""


@dataclass(frozen=True)
class ImageTransform:
    """Affine map image pixel -> network-input pixel: ``x_in = (x + 0.5)·sx − 0.5 + ox``.

    ``sx, sy`` are the resize factors (input/image), ``ox, oy`` the letterbox padding
    in network-input pixels; ``image_size`` is the original (W, H).
    """

    sx: float
    sy: float
    ox: float
    oy: float
    image_size: tuple[int, int]

    def image_to_input(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) image pixels -> (N, 2) network-input pixels (NaN stays NaN)."""
        xy = np.asarray(xy, dtype=np.float64)
        out = np.empty_like(xy)
        out[..., 0] = (xy[..., 0] + 0.5) * self.sx - 0.5 + self.ox
        out[..., 1] = (xy[..., 1] + 0.5) * self.sy - 0.5 + self.oy
        return out

    def input_to_image(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) network-input pixels -> (N, 2) original image pixels (NaN stays NaN)."""
        xy = np.asarray(xy, dtype=np.float64)
        out = np.empty_like(xy)
        out[..., 0] = (xy[..., 0] - self.ox + 0.5) / self.sx - 0.5
        out[..., 1] = (xy[..., 1] - self.oy + 0.5) / self.sy - 0.5
        return out

    def adjust_intrinsics(self, K: np.ndarray) -> np.ndarray:
        """(3, 3) intrinsics of the original image -> those of the network input."""
        K_in = scale_intrinsics(np.asarray(K, dtype=np.float64), self.sx, self.sy).copy()
        K_in[0, 2] += self.ox
        K_in[1, 2] += self.oy
        return K_in


class Preprocessor:
    """Letterbox/resize + colour order + normalisation into a preallocated NCHW buffer.

    Args:
        input_size: network (W, H) in pixels.
        mean, std: per-channel RGB normalisation applied to values scaled to [0, 1].
        mode: ``"letterbox"`` keeps the aspect ratio and pads (padding = the mean
            colour, i.e. 0 after normalisation); ``"resize"`` stretches.
        interpolation: OpenCV interpolation flag for the resize.
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        mode: str = "letterbox",
        interpolation: int = cv2.INTER_LINEAR,
    ) -> None:
        if mode not in _MODES:
            raise PreprocessError(f"mode must be one of {_MODES}, got {mode!r}")
        width, height = (int(v) for v in input_size)
        if width <= 0 or height <= 0:
            raise PreprocessError(f"input_size must be positive (W, H), got {input_size}")
        self.input_size = (width, height)
        self.mode = mode
        self.interpolation = interpolation
        std_arr = np.asarray(std, dtype=np.float64)
        self._scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
        self._bias = (-np.asarray(mean, dtype=np.float64) / std_arr).astype(np.float32)
        self.tensor = np.zeros((1, 3, height, width), dtype=np.float32)
        self._key: tuple[int, int, int] | None = None
        self._transform: ImageTransform | None = None
        self._resized: np.ndarray | None = None

    def transform_for(self, image_size: tuple[int, int]) -> ImageTransform:
        """The pixel mapping for an original image of (W, H) pixels."""
        w, h = image_size
        width, height = self.input_size
        if self.mode == "resize":
            return ImageTransform(width / w, height / h, 0.0, 0.0, (w, h))
        scale = min(width / w, height / h)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        return ImageTransform(
            new_w / w, new_h / h, float((width - new_w) // 2), float((height - new_h) // 2), (w, h)
        )

    def _prepare(self, w: int, h: int, channels: int) -> ImageTransform:
        """(Re)allocate the resize buffer when the camera's image size or format changes."""
        if self._key != (w, h, channels):
            transform = self.transform_for((w, h))
            size = (round(transform.sy * h), round(transform.sx * w))
            shape = size if channels == 1 else (*size, channels)
            self._resized = None if size == (h, w) else np.empty(shape, dtype=np.uint8)
            self.tensor[...] = 0.0  # padding = mean colour
            self._key, self._transform = (w, h, channels), transform
        assert self._transform is not None
        return self._transform

    def __call__(self, image: np.ndarray, encoding: str = "bgr8") -> tuple[np.ndarray, ImageTransform]:
        """Fill ``self.tensor`` from an image.

        Args:
            image: (H, W, 3|4) or (H, W) uint8 in ``encoding``.
            encoding: one of ``ENCODINGS`` (``bgr8`` for OpenCV images).

        Returns:
            The (1, 3, H_net, W_net) float32 buffer (reused on the next call) and the
            image -> input pixel transform.
        """
        if encoding not in ENCODINGS:
            raise PreprocessError(f"unsupported image encoding {encoding!r}; use one of {list(ENCODINGS)}")
        image = np.asarray(image)
        channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else -1)
        if image.dtype != np.uint8 or channels != _CHANNELS[encoding] or min(image.shape[:2]) == 0:
            raise PreprocessError(
                f"image must be uint8 (H, W{'' if encoding == 'mono8' else f', {_CHANNELS[encoding]}'}) "
                f"for encoding {encoding!r}, got {image.dtype} {image.shape}"
            )
        h, w = image.shape[:2]
        transform = self._prepare(w, h, channels)
        source = image.reshape(h, w) if channels == 1 else image
        if self._resized is not None:
            rh, rw = self._resized.shape[:2]
            source = cv2.resize(source, (rw, rh), dst=self._resized, interpolation=self.interpolation)
        self._normalise(source, encoding, transform)
        return self.tensor, transform

    def _normalise(self, source: np.ndarray, encoding: str, transform: ImageTransform) -> None:
        """Write (pixel/255 − mean)/std into the network input, channel by channel."""
        rh, rw = source.shape[:2]
        oy, ox = int(transform.oy), int(transform.ox)
        order = ENCODINGS[encoding]
        for c in range(3):
            plane = self.tensor[0, c, oy : oy + rh, ox : ox + rw]
            channel = source if order is None else source[:, :, order[c]]
            np.multiply(channel, self._scale[c], out=plane, casting="unsafe")
            np.add(plane, self._bias[c], out=plane)

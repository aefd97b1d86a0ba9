"""Training targets: Gaussian belief maps and the vector fields, of either kind.

Maps are at the network's output stride. Channel layout (docs/architecture.md):
belief channel ``c*9 + k``; vector channels ``c*16 + 2k`` (dx) and ``c*16 + 2k + 1`` (dy).
Output pixel j covers input pixels [s*j, s*j + s - 1], so input x = s*j + (s - 1)/2.

Two kinds of vector field fill the same channels (``VECTOR_FIELDS``; a model bundle names
its kind, and the decoder reads it that way):

- ``to_centroid`` (the HRPose paper's, after DOPE): near each corner, the unit vector from
  that corner toward its instance's centroid (:func:`vector_fields`). A corner's identity
  is then decided by which belief channel peaks at it, far from the object's middle.
- ``corner_offsets`` (CenterNet / CenterPose style): near each centroid, the offset from
  that pixel to each of the 8 corners, in units of ``offset_scale`` output pixels
  (:func:`corner_offsets`). Which corner is which is then read where the network sees the
  whole object; measured on this project's CPU recipe, it learns corner identity sooner
  (README, "corner identity"). The belief peaks still give the precise positions.
"""

from __future__ import annotations

import numpy as np

from hrpose_ros.geometry.keypoints import NUM_CORNERS, NUM_KEYPOINTS, VECTOR_CHANNELS_PER_CLASS, Keypoint

__all__ = [
    "CORNER_OFFSETS",
    "DEFAULT_OFFSET_SCALE",
    "TO_CENTROID",
    "VECTOR_FIELDS",
    "TargetError",
    "belief_maps",
    "corner_offsets",
    "to_input_coords",
    "to_output_coords",
    "vector_fields",
]


TO_CENTROID = "to_centroid"
CORNER_OFFSETS = "corner_offsets"
VECTOR_FIELDS = (TO_CENTROID, CORNER_OFFSETS)
"""The kinds of vector field (module docstring); ``to_centroid`` is the paper's."""

DEFAULT_OFFSET_SCALE = 8.0
"""Output pixels per unit of a ``corner_offsets`` field: keeps the regressed values near 1."""


class TargetError(ValueError):
    """Bad keypoints, class indices, map size, stride, sigma or radius."""


def to_output_coords(xy: np.ndarray, stride: int) -> np.ndarray:
    """Input-image pixel coordinates -> output-map pixel coordinates (any shape (..., 2))."""
    return (np.asarray(xy, dtype=np.float64) - (stride - 1) / 2.0) / stride


def to_input_coords(xy: np.ndarray, stride: int) -> np.ndarray:
    """Output-map pixel coordinates -> input-image pixel coordinates (any shape (..., 2))."""
    return np.asarray(xy, dtype=np.float64) * stride + (stride - 1) / 2.0


def _check(
    keypoints_2d: np.ndarray,
    class_indices: np.ndarray,
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 2):
        raise TargetError(f"keypoints_2d must have shape (M, {NUM_KEYPOINTS}, 2), got {kp.shape}")
    cls = np.asarray(class_indices).reshape(-1)
    if cls.shape != (kp.shape[0],) or (cls.size and not np.issubdtype(cls.dtype, np.integer)):
        raise TargetError(f"class_indices must be {kp.shape[0]} integers, got {np.asarray(class_indices)!r}")
    if num_classes < 1 or (cls.size and (cls.min() < 0 or cls.max() >= num_classes)):
        raise TargetError(f"class_indices must lie in [0, {num_classes}), got {cls.tolist()}")
    h, w = (int(v) for v in out_hw)
    if h < 1 or w < 1:
        raise TargetError(f"out_hw must be positive (h, w), got {out_hw}")
    if int(stride) != stride or stride < 1:
        raise TargetError(f"stride must be a positive integer, got {stride}")
    return to_output_coords(kp, stride), cls.astype(np.int64), h, w


def belief_maps(  # noqa: PLR0917  (positional signature of docs/architecture.md)
    keypoints_2d: np.ndarray,
    class_indices: np.ndarray,
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int = 4,
    sigma: float = 2.0,
) -> np.ndarray:
    """Gaussian belief maps, one per class and keypoint.

    Args:
        keypoints_2d: (M, 9, 2) keypoints of M instances, input-image pixels; NaN = unknown.
        class_indices: (M,) class index of each instance.
        num_classes: C.
        out_hw: (h, w) of the output maps.
        stride: input pixels per output pixel.
        sigma: Gaussian std, output pixels.

    Returns:
        (C*9, h, w) float32: ``exp(-d^2 / (2 sigma^2))``, maximum over instances (not the sum).
        A keypoint just outside the map still adds its tail inside.
    """
    xy, cls, h, w = _check(keypoints_2d, class_indices, num_classes, out_hw, stride)
    if not (np.isfinite(sigma) and sigma > 0):
        raise TargetError(f"sigma must be > 0 output pixels, got {sigma}")
    out = np.zeros((num_classes * NUM_KEYPOINTS, h, w), dtype=np.float32)
    if xy.shape[0] == 0:
        return out
    finite = np.all(np.isfinite(xy), axis=-1)  # (M, 9)
    xs = np.where(finite, xy[..., 0], np.inf)[..., None]
    ys = np.where(finite, xy[..., 1], np.inf)[..., None]
    gx = np.exp(-((np.arange(w) - xs) ** 2) / (2.0 * sigma**2)).astype(np.float32)  # (M, 9, w)
    gy = np.exp(-((np.arange(h) - ys) ** 2) / (2.0 * sigma**2)).astype(np.float32)  # (M, 9, h)
    for m in range(xy.shape[0]):
        if not finite[m].any():
            continue
        block = out[cls[m] * NUM_KEYPOINTS : (cls[m] + 1) * NUM_KEYPOINTS]
        np.maximum(block, gy[m][:, :, None] * gx[m][:, None, :], out=block)
    return out


def vector_fields(  # noqa: PLR0917  (positional signature of docs/architecture.md)
    keypoints_2d: np.ndarray,
    class_indices: np.ndarray,
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int = 4,
    radius: float = 3.0,
) -> np.ndarray:
    """Unit vectors from each corner toward its instance's centroid, near the corner.

    Args:
        keypoints_2d: (M, 9, 2) keypoints, input-image pixels; NaN = unknown.
        class_indices: (M,) class index of each instance.
        num_classes: C.
        out_hw: (h, w) of the output maps.
        stride: input pixels per output pixel.
        radius: vectors are set within this distance of the corner, output pixels.

    Returns:
        (C*16, h, w) float32, zero elsewhere. Where two instances of one class overlap,
        the nearer corner wins. Corners without a finite, distinct centroid get no vector.
    """
    xy, cls, h, w = _check(keypoints_2d, class_indices, num_classes, out_hw, stride)
    if not (np.isfinite(radius) and radius > 0):
        raise TargetError(f"radius must be > 0 output pixels, got {radius}")
    out = np.zeros((num_classes * VECTOR_CHANNELS_PER_CLASS, h, w), dtype=np.float32)
    direction = xy[:, Keypoint.CENTROID, None, :] - xy[:, :NUM_CORNERS, :]  # (M, 8, 2)
    length = np.linalg.norm(direction, axis=-1)
    valid = np.isfinite(length) & (length > 1e-9)
    unit = np.where(valid[..., None], direction / np.where(valid, length, 1.0)[..., None], 0.0)
    nearest_d2: dict[int, np.ndarray] = {}
    for m, k in zip(*np.nonzero(valid), strict=True):
        channel = int(cls[m]) * NUM_CORNERS + int(k)
        claimed = _claim_disc(nearest_d2, channel, xy[m, k], radius, (h, w))
        if claimed is None:
            continue
        (y0, y1, x0, x1), take = claimed
        out[2 * channel, y0:y1, x0:x1][take] = unit[m, k, 0]
        out[2 * channel + 1, y0:y1, x0:x1][take] = unit[m, k, 1]
    return out


def corner_offsets(  # noqa: PLR0917  (the signature of vector_fields, plus the scale)
    keypoints_2d: np.ndarray,
    class_indices: np.ndarray,
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int = 4,
    radius: float = 2.0,
    scale: float = DEFAULT_OFFSET_SCALE,
) -> np.ndarray:
    """Offsets from each pixel near a centroid to the 8 corners of its instance.

    Args:
        keypoints_2d: (M, 9, 2) keypoints, input-image pixels; NaN = unknown.
        class_indices: (M,) class index of each instance.
        num_classes: C.
        out_hw: (h, w) of the output maps.
        stride: input pixels per output pixel.
        radius: offsets are set within this distance of the centroid, output pixels.
        scale: output pixels per unit of the stored offsets.

    Returns:
        (C*16, h, w) float32: at pixel p within ``radius`` of a centroid, channels
        ``c*16 + 2k`` and ``+1`` hold ``(corner_k - p) / scale`` (output pixels); zero
        elsewhere. Where two instances of one class overlap, the nearer centroid wins.
        Instances without all 9 keypoints finite get no offsets (a projected cuboid always
        has them, inside the image or not).
    """
    xy, cls, h, w = _check(keypoints_2d, class_indices, num_classes, out_hw, stride)
    if not (np.isfinite(radius) and radius > 0):
        raise TargetError(f"radius must be > 0 output pixels, got {radius}")
    if not (np.isfinite(scale) and scale > 0):
        raise TargetError(f"scale must be > 0 output pixels, got {scale}")
    out = np.zeros((num_classes * VECTOR_CHANNELS_PER_CLASS, h, w), dtype=np.float32)
    nearest_d2: dict[int, np.ndarray] = {}
    for m in np.flatnonzero(np.all(np.isfinite(xy), axis=(1, 2))):
        c = int(cls[m])
        claimed = _claim_disc(nearest_d2, c, xy[m, Keypoint.CENTROID], radius, (h, w))
        if claimed is None:
            continue
        (y0, y1, x0, x1), take = claimed
        px, py = np.meshgrid(np.arange(x0, x1), np.arange(y0, y1))
        block = out[c * VECTOR_CHANNELS_PER_CLASS : (c + 1) * VECTOR_CHANNELS_PER_CLASS, y0:y1, x0:x1]
        for k in range(NUM_CORNERS):
            block[2 * k][take] = ((xy[m, k, 0] - px) / scale)[take]
            block[2 * k + 1][take] = ((xy[m, k, 1] - py) / scale)[take]
    return out


def _claim_disc(
    nearest_d2: dict[int, np.ndarray], key: int, center: np.ndarray, radius: float, hw: tuple[int, int]
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The window around ``center`` and the mask of its pixels within ``radius`` that are
    nearer to it than to any centre claimed before under ``key`` (a channel or a class).

    Why: a disc only touches a (2r+1)^2 window, and a per-key buffer of squared distances
    (``nearest_d2``, updated here) lets the nearer instance win where two of one class
    overlap, the first one on ties.
    """
    window = _window(center, radius, *hw)
    if window is None:
        return None
    (y0, y1, x0, x1), d2 = window
    best = nearest_d2.setdefault(key, np.full(hw, np.inf))[y0:y1, x0:x1]
    take = (d2 <= radius**2) & (d2 < best)
    best[take] = d2[take]
    return (y0, y1, x0, x1), take


def _window(
    center: np.ndarray, radius: float, h: int, w: int
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Clipped pixel window around ``center`` (output px) and its squared distances."""
    x0, x1 = max(int(np.floor(center[0] - radius)), 0), min(int(np.ceil(center[0] + radius)) + 1, w)
    y0, y1 = max(int(np.floor(center[1] - radius)), 0), min(int(np.ceil(center[1] + radius)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    d2 = (np.arange(y0, y1) - center[1])[:, None] ** 2 + (np.arange(x0, x1) - center[0])[None, :] ** 2
    return (y0, y1, x0, x1), d2

"""Drawing helpers for overlays: projected cuboids and pose axes (numpy + OpenCV only).

Shared by the node's debug overlay, the evaluation figures and the synthetic-data
previews, so every picture of a pose uses the same keypoint order and edges.
"""

from __future__ import annotations

import cv2
import numpy as np

from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.keypoints import CUBOID_EDGES, NUM_KEYPOINTS, Keypoint

__all__ = ["DrawError", "draw_axes", "draw_cuboid"]


class DrawError(ValueError):
    """Bad image or point array given to a drawing helper."""


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DrawError(f"image must be an (H, W, 3) uint8 array, got {getattr(image, 'shape', type(image))}")


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return (round(float(xy[0])), round(float(xy[1])))


def draw_cuboid(
    image: np.ndarray, keypoints_2d: np.ndarray, color: tuple[int, int, int], thickness: int = 2
) -> np.ndarray:
    """Draw the 12 cuboid edges and the centroid of one instance, in place.

    Args:
        image: (H, W, 3) uint8, modified in place (channel order is the caller's).
        keypoints_2d: (9, 2) pixels in ``Keypoint`` order; edges touching a NaN point
            are skipped (missing keypoints).
        color: 0..255 triple in the image's channel order.
        thickness: line width, pixels.

    Returns:
        The same ``image``, for chaining.
    """
    _check_image(image)
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    if kp.shape != (NUM_KEYPOINTS, 2):
        raise DrawError(f"keypoints_2d must have shape ({NUM_KEYPOINTS}, 2), got {kp.shape}")
    ok = np.all(np.isfinite(kp), axis=1) & np.all(np.abs(kp) < 1e6, axis=1)
    color = tuple(int(c) for c in color)
    for a, b in CUBOID_EDGES:
        if ok[a] and ok[b]:
            cv2.line(image, _pt(kp[a]), _pt(kp[b]), color, thickness, cv2.LINE_AA)
    c = Keypoint.CENTROID
    if ok[c]:
        cv2.circle(image, _pt(kp[c]), max(2, thickness + 1), color, -1, cv2.LINE_AA)
    return image


def draw_axes(
    image: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, length: float, *, thickness: int = 2
) -> np.ndarray:
    """Draw the object's x, y, z axes in place, red/green/blue in BGR order.

    Args:
        image: (H, W, 3) uint8 BGR image, modified in place.
        R: (3, 3), t: (3,) pose object -> camera, metres.
        K: (3, 3) intrinsics, pixels.
        length: axis length, metres.

    Returns:
        The same ``image``. Axes with an end behind the camera are skipped.
    """
    _check_image(image)
    if not (np.isfinite(length) and length > 0):
        raise DrawError(f"length must be > 0 metres, got {length}")
    pts = np.vstack([np.zeros(3), np.eye(3) * length])
    uv = project_points(pts, R, t, K)
    for axis, color in enumerate(((0, 0, 255), (0, 255, 0), (255, 0, 0))):
        ends = uv[[0, axis + 1]]
        if np.all(np.isfinite(ends)) and np.all(np.abs(ends) < 1e6):
            cv2.arrowedLine(image, _pt(ends[0]), _pt(ends[1]), color, thickness, cv2.LINE_AA, tipLength=0.15)
    return image

"""Pinhole camera helpers: rigid transforms, projection and intrinsics scaling.

Conventions (docs/architecture.md): ``x_cam = R @ x_obj + t`` in metres; pixel
coordinates follow OpenCV (the centre of pixel (i, j) is at x = j, y = i).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "CameraError",
    "check_intrinsics",
    "intrinsics_matrix",
    "project_points",
    "scale_intrinsics",
    "transform_points",
]


class CameraError(ValueError):
    """A camera matrix, pose or point array has the wrong shape or values."""


def _points3(pts: np.ndarray, name: str = "pts") -> np.ndarray:
    arr = np.asarray(pts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise CameraError(f"{name} must have shape (N, 3), got {arr.shape}")
    return arr


def _pose(R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    if R.shape != (3, 3):
        raise CameraError(f"R must have shape (3, 3), got {R.shape}")
    if t.shape != (3,):
        raise CameraError(f"t must have 3 elements, got shape {t.shape}")
    return R, t


def check_intrinsics(K: np.ndarray) -> np.ndarray:
    """Return ``K`` as a (3, 3) float64 array; raise ``CameraError`` if it is not a camera matrix.

    A camera matrix here is finite, with fx, fy > 0 and last row (0, 0, 1).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise CameraError(f"K must have shape (3, 3), got {K.shape}")
    if not np.all(np.isfinite(K)):
        raise CameraError(f"K must be finite, got {K.tolist()}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or np.max(np.abs(K[2] - (0.0, 0.0, 1.0))) > 1e-9:
        raise CameraError(f"K must have fx, fy > 0 and last row (0, 0, 1), got {K.tolist()}")
    return K


def transform_points(pts: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Map object-frame points into the camera frame.

    Args:
        pts: (N, 3) points, object frame, metres.
        R: (3, 3) rotation; t: (3,) translation in metres.

    Returns:
        (N, 3) float64 points in the camera optical frame, metres.
    """
    pts = _points3(pts)
    R, t = _pose(R, t)
    return pts @ R.T + t


def project_points(
    pts: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    K: np.ndarray,
    dist: np.ndarray | None = None,
) -> np.ndarray:
    """Project object-frame points into the image.

    Args:
        pts: (N, 3) points, object frame, metres.
        R, t: pose (3, 3) and (3,) mapping object into camera frame.
        K: (3, 3) camera matrix.
        dist: OpenCV distortion coefficients (4, 5, 8, 12 or 14) or None.

    Returns:
        (N, 2) float64 pixel coordinates (OpenCV convention). Points at or behind
        the camera plane (z <= 0) have no image and come back as NaN.
    """
    K = check_intrinsics(K)
    cam = transform_points(pts, R, t)
    out = np.full((cam.shape[0], 2), np.nan)
    front = cam[:, 2] > 0
    if not np.any(front):
        return out
    if dist is None or not np.any(np.asarray(dist, dtype=np.float64)):
        uvw = cam[front] @ K.T
        out[front] = uvw[:, :2] / uvw[:, 2:3]
        return out
    dist = np.asarray(dist, dtype=np.float64).reshape(-1)
    if dist.size not in (4, 5, 8, 12, 14):
        raise CameraError(f"dist must have 4, 5, 8, 12 or 14 coefficients, got {dist.size}")
    zero = np.zeros(3)
    img, _ = cv2.projectPoints(cam[front].reshape(-1, 1, 3), zero, zero, K, dist)
    out[front] = img.reshape(-1, 2)
    return out


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Build a (3, 3) float64 camera matrix from focal lengths and principal point (pixels)."""
    return check_intrinsics(np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64))


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Camera matrix of an image resized by factors ``sx`` (width) and ``sy`` (height).

    Uses the pixel-centre convention: a point at x in the original image sits at
    ``(x + 0.5) * sx - 0.5`` in the resized one, so ``cx' = (cx + 0.5) * sx - 0.5``.

    Returns:
        (3, 3) float64 camera matrix of the resized image.
    """
    K = check_intrinsics(K)
    if not (np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0):
        raise CameraError(f"scale factors must be finite and > 0, got sx={sx}, sy={sy}")
    out = K.copy()
    out[0, :2] *= sx
    out[1, 1] *= sy
    out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return out

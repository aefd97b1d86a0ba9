"""Pinhole camera helpers: rigid transforms, projection, undistortion and intrinsics scaling.

Conventions (docs/architecture.md): ``x_cam = R @ x_obj + t`` in metres; pixel
coordinates follow OpenCV (the centre of pixel (i, j) is at x = j, y = i). Distortion
models carry REP 104's names: ``plumb_bob`` and ``rational_polynomial`` are OpenCV's
pinhole coefficients (4 to 14 of them), ``equidistant`` the fisheye model of
``cv2.fisheye`` (k1..k4).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "DISTORTION_MODELS",
    "CameraError",
    "binned_roi_intrinsics",
    "check_distortion",
    "check_intrinsics",
    "intrinsics_matrix",
    "project_points",
    "scale_intrinsics",
    "transform_points",
    "undistort_points",
]

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
"""Distortion models the projection, undistortion and PnP functions take (REP 104 names)."""


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


def check_distortion(dist: np.ndarray | None, model: str = "plumb_bob") -> np.ndarray | None:
    """Coefficients of ``model`` as (N,) float64, None when there are none (all zero).

    Raises ``CameraError`` for an unknown model or a coefficient count the model does not have.
    """
    if model not in DISTORTION_MODELS:
        raise CameraError(f"distortion model must be one of {DISTORTION_MODELS}, got {model!r}")
    if dist is None or not np.any(np.asarray(dist, dtype=np.float64)):
        return None
    dist = np.asarray(dist, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(dist)):
        raise CameraError(f"distortion coefficients must be finite, got {dist.tolist()}")
    sizes = (4,) if model == "equidistant" else (4, 5, 8, 12, 14)
    if dist.size not in sizes:
        raise CameraError(
            f"{model} distortion needs {' or '.join(map(str, sizes))} coefficients, got {dist.size}"
        )
    return dist


def project_points(
    pts: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    K: np.ndarray,
    dist: np.ndarray | None = None,
    *,
    model: str = "plumb_bob",
) -> np.ndarray:
    """Project object-frame points into the image.

    Args:
        pts: (N, 3) points, object frame, metres.
        R, t: pose (3, 3) and (3,) mapping object into camera frame.
        K: (3, 3) camera matrix.
        dist: distortion coefficients of ``model`` (pinhole: 4, 5, 8, 12 or 14;
            equidistant: 4) or None.
        model: one of ``DISTORTION_MODELS``.

    Returns:
        (N, 2) float64 pixel coordinates (OpenCV convention). Points at or behind
        the camera plane (z <= 0) have no image and come back as NaN.
    """
    K = check_intrinsics(K)
    dist = check_distortion(dist, model)
    cam = transform_points(pts, R, t)
    out = np.full((cam.shape[0], 2), np.nan)
    front = cam[:, 2] > 0
    if not np.any(front):
        return out
    if dist is None:
        uvw = cam[front] @ K.T
        out[front] = uvw[:, :2] / uvw[:, 2:3]
        return out
    zero = np.zeros(3)
    if model == "equidistant":
        img, _ = cv2.fisheye.projectPoints(cam[front].reshape(-1, 1, 3), zero, zero, K, dist)
    else:
        img, _ = cv2.projectPoints(cam[front].reshape(-1, 1, 3), zero, zero, K, dist)
    out[front] = img.reshape(-1, 2)
    return out


_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12)


def undistort_points(
    uv: np.ndarray, K: np.ndarray, dist: np.ndarray | None, model: str = "plumb_bob"
) -> np.ndarray:
    """Pixels of a distorted image -> where an ideal pinhole camera with the same ``K`` sees them.

    Why: PnP then runs on a pinhole camera, whatever the lens model (the fisheye model
    has no place in OpenCV's pinhole PnP). NaN rows stay NaN.

    Args:
        uv: (N, 2) pixels; K: (3, 3); dist: coefficients of ``model`` or None (nothing to do).
    """
    K = check_intrinsics(K)
    dist = check_distortion(dist, model)
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise CameraError(f"uv must have shape (N, 2), got {uv.shape}")
    out = uv.copy()
    finite = np.isfinite(uv).all(axis=1)
    if dist is None or not np.any(finite):
        return out
    pts = uv[finite].reshape(-1, 1, 2)
    if model == "equidistant":
        ideal = cv2.fisheye.undistortPoints(pts, K, dist, R=np.eye(3), P=K, criteria=_UNDISTORT_CRITERIA)
    else:
        ideal = cv2.undistortPoints(pts, K, dist, R=np.eye(3), P=K, criteria=_UNDISTORT_CRITERIA)
    out[finite] = ideal.reshape(-1, 2)
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


def binned_roi_intrinsics(
    K: np.ndarray, x_offset: int = 0, y_offset: int = 0, binning_x: int = 1, binning_y: int = 1
) -> np.ndarray:
    """Camera matrix of a read-out window and binning of the sensor that ``K`` calibrates.

    REP 104: K is given for the full-resolution sensor; the image is the region of
    interest starting at sensor pixel (x_offset, y_offset), then binned. With the
    pixel-centre convention, image pixel u covers sensor pixel
    ``u_s = x_offset + (u + 0.5) * binning_x - 0.5``; distortion coefficients need no
    change (they act before K).

    Returns:
        (3, 3) float64 camera matrix of the published image.
    """
    K = check_intrinsics(K)
    if min(binning_x, binning_y) < 1:
        raise CameraError(f"binning must be >= 1, got {binning_x}x{binning_y}")
    shifted = K.copy()
    shifted[0, 2] -= x_offset
    shifted[1, 2] -= y_offset
    return scale_intrinsics(shifted, 1.0 / binning_x, 1.0 / binning_y)

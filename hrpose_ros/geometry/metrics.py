"""Pose-error metrics with bop_toolkit's names: ADD, ADD-S (``adi``), 2D projection.

The paper's accuracy: a pose is correct when ADD (ADD-S for symmetric objects) is
below 10% of the object diameter, or when the mean 2D projection error is below 5 px.
"""

from __future__ import annotations

import numpy as np

from hrpose_ros.geometry.camera import CameraError, project_points, transform_points

__all__ = [
    "MetricError",
    "add",
    "add_passed",
    "adi",
    "at_true_depth",
    "depth_error",
    "pose_error_add_or_adds",
    "proj",
    "proj_passed",
    "rotation_error_deg",
    "translation_error",
]


class MetricError(ValueError):
    """Bad metric input: shapes, or non-positive diameters and thresholds."""


def _rotation(R: np.ndarray, name: str) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        raise MetricError(f"{name} must have shape (3, 3), got {R.shape}")
    return R


def _points(pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] == 0:
        raise MetricError(f"pts must have shape (N, 3) with N >= 1, got {pts.shape}")
    return pts


def _both(R_est, t_est, R_gt, t_gt, pts) -> tuple[np.ndarray, np.ndarray]:
    """Model points (N, 3) under the estimated and the ground-truth pose, metres."""
    pts = _points(pts)
    try:
        return transform_points(pts, _rotation(R_est, "R_est"), t_est), transform_points(
            pts, _rotation(R_gt, "R_gt"), t_gt
        )
    except CameraError as exc:
        raise MetricError(str(exc)) from exc


def add(R_est: np.ndarray, t_est: np.ndarray, R_gt: np.ndarray, t_gt: np.ndarray, pts: np.ndarray) -> float:
    """ADD: mean distance between corresponding model points under the two poses.

    Args:
        R_est, R_gt: (3, 3) rotations; t_est, t_gt: (3,) translations, metres.
        pts: (N, 3) model points, object frame, metres.

    Returns:
        Error in metres.
    """
    est, gt = _both(R_est, t_est, R_gt, t_gt, pts)
    return float(np.mean(np.linalg.norm(est - gt, axis=1)))


def adi(R_est: np.ndarray, t_est: np.ndarray, R_gt: np.ndarray, t_gt: np.ndarray, pts: np.ndarray) -> float:
    """ADD-S (ADI): mean distance from each ground-truth point to the closest estimated point.

    Same arguments as ``add``; error in metres. Used for symmetric objects.
    """
    from scipy.spatial import cKDTree  # noqa: PLC0415  (lazy: only evaluation needs it)

    est, gt = _both(R_est, t_est, R_gt, t_gt, pts)
    dist, _ = cKDTree(est).query(gt, k=1)
    return float(np.mean(dist))


def proj(  # noqa: PLR0917  (bop_toolkit's positional signature)
    R_est: np.ndarray, t_est: np.ndarray, R_gt: np.ndarray, t_gt: np.ndarray, K: np.ndarray, pts: np.ndarray
) -> float:
    """Mean distance between the projections of the model points under the two poses.

    Args:
        R_est, t_est, R_gt, t_gt: poses as in ``add``.
        K: (3, 3) camera matrix.
        pts: (N, 3) model points, object frame, metres.

    Returns:
        Error in pixels; ``inf`` when a point lies behind the camera under either pose.
    """
    pts = _points(pts)
    try:
        est = project_points(pts, _rotation(R_est, "R_est"), t_est, K)
        gt = project_points(pts, _rotation(R_gt, "R_gt"), t_gt, K)
    except CameraError as exc:
        raise MetricError(str(exc)) from exc
    err = np.linalg.norm(est - gt, axis=1)
    return float(np.mean(err)) if np.all(np.isfinite(err)) else float("inf")


def rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray) -> float:
    """Angle of the rotation ``R_est @ R_gt.T``, degrees in [0, 180]."""
    R_est, R_gt = _rotation(R_est, "R_est"), _rotation(R_gt, "R_gt")
    cos = (np.trace(R_est @ R_gt.T) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def translation_error(t_est: np.ndarray, t_gt: np.ndarray) -> float:
    """Euclidean distance between two (3,) translations, metres."""
    t_est, t_gt = _translations(t_est, t_gt)
    return float(np.linalg.norm(t_est - t_gt))


def _translations(t_est: np.ndarray, t_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t_est = np.asarray(t_est, dtype=np.float64).reshape(-1)
    t_gt = np.asarray(t_gt, dtype=np.float64).reshape(-1)
    if t_est.shape != (3,) or t_gt.shape != (3,):
        raise MetricError(f"t_est and t_gt must have 3 elements, got {t_est.shape} and {t_gt.shape}")
    return t_est, t_gt


def depth_error(t_est: np.ndarray, t_gt: np.ndarray) -> float:
    """Signed relative depth error ``z_est / z_gt - 1`` (0.04: placed 4 % too far).

    Why: a monocular keypoint method reads depth from the object's apparent size, and
    at 0.1 of the diameter ADD tolerates ~1 % of the depth of a small object at 0.75 m,
    so this is the error to watch.
    """
    t_est, t_gt = _translations(t_est, t_gt)
    if not t_gt[2] > 0:
        raise MetricError(f"the ground-truth depth must be > 0, got {t_gt[2]}")
    return float(t_est[2] / t_gt[2] - 1.0)


def at_true_depth(t_est: np.ndarray, t_gt: np.ndarray) -> np.ndarray:
    """``t_est`` moved along its own viewing ray to the ground-truth depth.

    Why: scoring a pose with this translation (a diagnostic, not a result) separates
    depth errors from errors of rotation and image position, which stay as estimated.
    """
    t_est, t_gt = _translations(t_est, t_gt)
    if not t_est[2] > 0:
        raise MetricError(f"the estimated depth must be > 0, got {t_est[2]}")
    return t_est * (t_gt[2] / t_est[2])


def add_passed(err: float, diameter: float, fraction: float = 0.1) -> bool:
    """True when an ADD/ADD-S error (metres) is below ``fraction`` of the diameter (metres)."""
    if not (diameter > 0 and fraction > 0):
        raise MetricError(f"diameter and fraction must be > 0, got {diameter}, {fraction}")
    return bool(err < fraction * diameter)


def proj_passed(err_px: float, threshold_px: float = 5.0) -> bool:
    """True when a 2D projection error (pixels) is below ``threshold_px``."""
    if not threshold_px > 0:
        raise MetricError(f"threshold_px must be > 0, got {threshold_px}")
    return bool(err_px < threshold_px)


def pose_error_add_or_adds(  # noqa: PLR0917  (bop_toolkit's positional signature)
    R_est: np.ndarray, t_est: np.ndarray, R_gt: np.ndarray, t_gt: np.ndarray, pts: np.ndarray, symmetric: bool
) -> float:
    """ADD-S for symmetric objects, ADD otherwise (the paper's LINEMOD protocol); metres."""
    return (adi if symmetric else add)(R_est, t_est, R_gt, t_gt, pts)

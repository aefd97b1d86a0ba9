"""PnP: 2D keypoints + 3D keypoints + camera intrinsics -> object pose (R, t).

Method: SQPnP (globally optimal for the algebraic error, works from 3 points, no
planarity special case) as the initial solve, optionally inside RANSAC, then
Levenberg-Marquardt refinement of the reprojection error. Fisheye (``equidistant``)
keypoints are first undistorted with ``cv2.fisheye`` (``geometry.camera.undistort_points``),
then solved as a pinhole camera with the same K: OpenCV's PnP knows only pinhole
distortion. Degenerate input (too few
finite points, collinear points, a bad camera matrix, a pose behind the camera)
gives ``None``, never NaN; malformed arrays raise ``PnPError``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from hrpose_ros.geometry.camera import DISTORTION_MODELS, undistort_points
from hrpose_ros.geometry.decode import Instance
from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS

__all__ = ["MIN_PNP_POINTS", "PnPError", "PoseEstimate", "solve_instance_pose", "solve_pnp"]

_LOG = logging.getLogger(__name__)

MIN_PNP_POINTS = 4
"""Fewest finite correspondences a pose is computed from."""

_COLLINEAR_RATIO = 1e-6
# OpenCV's default LM stopping rule (20 iterations, parameter change < FLT_EPSILON), made explicit.
_LM_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 20, float(np.finfo(np.float32).eps))


class PnPError(ValueError):
    """Malformed PnP input: array shapes that do not match."""


@dataclass(eq=False)
class PoseEstimate:
    """A solved pose.

    Attributes:
        R: (3, 3) float64 rotation, object -> camera optical frame.
        t: (3,) float64 translation, metres.
        reprojection_error_px: RMS reprojection error over the points used, pixels.
        num_points: number of correspondences used (RANSAC inliers when RANSAC is on).
        point_indices: (num_points,) indices of the used correspondences in the input.
    """

    R: np.ndarray
    t: np.ndarray
    reprojection_error_px: float
    num_points: int
    point_indices: np.ndarray | None = None


def _check_inputs(
    pts_3d: np.ndarray, pts_2d: np.ndarray, K: np.ndarray, dist: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    p3 = np.asarray(pts_3d, dtype=np.float64)
    p2 = np.asarray(pts_2d, dtype=np.float64)
    if p3.ndim != 2 or p3.shape[1] != 3:
        raise PnPError(f"pts_3d must have shape (N, 3), got {p3.shape}")
    if p2.ndim != 2 or p2.shape[1] != 2 or p2.shape[0] != p3.shape[0]:
        raise PnPError(f"pts_2d must have shape ({p3.shape[0]}, 2) to match pts_3d, got {p2.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise PnPError(f"K must have shape (3, 3), got {K.shape}")
    d = np.zeros(5) if dist is None else np.asarray(dist, dtype=np.float64).reshape(-1)
    if d.size not in (4, 5, 8, 12, 14):
        raise PnPError(f"dist must have 4, 5, 8, 12 or 14 coefficients, got {d.size}")
    return p3, p2, K, d


def _degenerate(p3: np.ndarray, p2: np.ndarray) -> bool:
    """True when the 3D or the 2D points are (nearly) coincident or collinear.

    With the scatter matrix's eigenvalues l1 >= l2 >= ..., trace = sum(l) and
    e2 = sum of pairwise products >= l1 * l2; e2 / trace^2 ~ l2 / l1 is ~0 only for
    points on a line (cheaper than an SVD, which matters at 26 poses per frame).
    """
    for pts in (p3, p2):
        centred = pts - pts.sum(axis=0) / len(pts)
        scatter = centred.T @ centred
        trace = float(scatter.trace())
        e2 = (trace * trace - float((scatter * scatter).sum())) / 2.0
        if trace <= 0 or e2 <= _COLLINEAR_RATIO**2 * trace * trace:
            return True
    return False


def _initial_solve(
    p3: np.ndarray, p2: np.ndarray, K: np.ndarray, d: np.ndarray, *, use_ransac: bool, threshold_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """SQPnP (optionally in RANSAC): rvec, tvec and the inlier indices, or None."""
    obj, img = p3.reshape(-1, 1, 3), p2.reshape(-1, 1, 2)
    if use_ransac:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            obj, img, K, d, reprojectionError=threshold_px, iterationsCount=100, flags=cv2.SOLVEPNP_SQPNP
        )
        if not ok or inliers is None or len(inliers) < MIN_PNP_POINTS:
            return None
        return rvec, tvec, np.sort(inliers.reshape(-1))
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, d, flags=cv2.SOLVEPNP_SQPNP)
    return (rvec, tvec, np.arange(len(p3))) if ok else None


def solve_pnp(
    pts_3d: np.ndarray,
    pts_2d: np.ndarray,
    K: np.ndarray,
    dist: np.ndarray | None = None,
    use_ransac: bool = False,
    *,
    ransac_threshold_px: float = 8.0,
    distortion_model: str = "plumb_bob",
) -> PoseEstimate | None:
    """Solve the object pose from 2D-3D correspondences.

    Args:
        pts_3d: (N, 3) object-frame points, metres; rows with NaN are ignored.
        pts_2d: (N, 2) image points, pixels (OpenCV convention); rows with NaN are ignored.
        K: (3, 3) camera matrix. dist: distortion coefficients of ``distortion_model`` or None.
        use_ransac: run SQPnP inside RANSAC (outlier keypoints) before refinement.
        ransac_threshold_px: RANSAC inlier threshold, pixels.
        distortion_model: ``geometry.camera.DISTORTION_MODELS``; for ``equidistant`` the
            points are undistorted first and the reprojection error is measured on the
            undistorted (pinhole) image.

    Returns:
        ``PoseEstimate`` or None when no valid pose exists (fewer than 4 finite points,
        collinear points, non-finite K, solver failure, pose behind the camera).
    """
    p3, p2, K, d = _check_inputs(pts_3d, pts_2d, K, dist)
    if distortion_model not in DISTORTION_MODELS:
        raise PnPError(f"distortion_model must be one of {DISTORTION_MODELS}, got {distortion_model!r}")
    if not (np.isfinite(K).all() and np.isfinite(d).all() and K[0, 0] > 0 and K[1, 1] > 0):
        return None
    if distortion_model == "equidistant" and np.any(d):
        p2, d = undistort_points(p2, K, d, distortion_model), np.zeros(5)
    index = np.flatnonzero(np.isfinite(p3).all(axis=1) & np.isfinite(p2).all(axis=1))
    if len(index) < MIN_PNP_POINTS or _degenerate(p3[index], p2[index]):
        return None
    try:
        first = _initial_solve(
            p3[index], p2[index], K, d, use_ransac=use_ransac, threshold_px=ransac_threshold_px
        )
        if first is None:
            return None
        rvec, tvec, used = first
        index = index[used]
        rvec, tvec = cv2.solvePnPRefineLM(p3[index], p2[index], K, d, rvec, tvec, criteria=_LM_CRITERIA)
    except cv2.error as exc:
        _LOG.debug("PnP failed: %s", exc)
        return None
    R, t = cv2.Rodrigues(rvec)[0], tvec.reshape(3).astype(np.float64)
    if (
        not (np.isfinite(R).all() and np.isfinite(t).all())
        or t[2] <= 0
        or np.any(p3[index] @ R[2] + t[2] <= 0)
    ):
        return None
    projected = cv2.projectPoints(p3[index], rvec, tvec, K, d)[0].reshape(-1, 2)
    rms = float(np.sqrt(np.mean(np.sum((projected - p2[index]) ** 2, axis=1))))
    if not np.isfinite(rms):
        return None
    return PoseEstimate(R=R, t=t, reprojection_error_px=rms, num_points=len(index), point_indices=index)


def solve_instance_pose(
    instance: Instance,
    keypoints_3d: np.ndarray,
    K: np.ndarray,
    dist: np.ndarray | None = None,
    use_ransac: bool = False,
    *,
    distortion_model: str = "plumb_bob",
) -> PoseEstimate | None:
    """Pose of a decoded instance from its found keypoints.

    Args:
        instance: decoder output; its (9, 2) keypoints are pixels of the image that
            ``K`` and ``dist`` describe.
        keypoints_3d: (9, 3) keypoints of the instance's class, object frame, metres.
        K, dist, distortion_model: that image's camera (see ``solve_pnp``).
        use_ransac: see ``solve_pnp``.
    """
    kp3 = np.asarray(keypoints_3d, dtype=np.float64)
    if kp3.shape != (NUM_KEYPOINTS, 3):
        raise PnPError(f"keypoints_3d must have shape ({NUM_KEYPOINTS}, 3), got {kp3.shape}")
    return solve_pnp(
        kp3, instance.keypoints, K, dist, use_ransac=use_ransac, distortion_model=distortion_model
    )

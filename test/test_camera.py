"""Camera helpers: projection (with and without distortion), transforms, intrinsics scaling."""

from __future__ import annotations

import numpy as np
import pytest

from hrpose_ros.geometry.camera import (
    CameraError,
    check_intrinsics,
    intrinsics_matrix,
    project_points,
    scale_intrinsics,
    transform_points,
)

K = intrinsics_matrix(500.0, 400.0, 320.0, 240.0)
I3 = np.eye(3)
RZ90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def test_project_points_matches_the_pinhole_model_by_hand():
    uv = project_points(np.array([[0.1, -0.05, 1.0], [0.0, 0.0, 2.0]]), I3, np.zeros(3), K)
    np.testing.assert_allclose(uv, [[370.0, 220.0], [320.0, 240.0]])


def test_project_points_applies_the_pose():
    # R maps x to y; t moves 1 m forward: (0.1, 0, 0) -> (0, 0.1, 1) -> (320, 280)
    uv = project_points(np.array([[0.1, 0.0, 0.0]]), RZ90, np.array([0.0, 0.0, 1.0]), K)
    np.testing.assert_allclose(uv, [[320.0, 280.0]])


def test_project_points_applies_radial_distortion_by_hand():
    # normalised x = 0.2, r^2 = 0.04, k1 = 0.1: x_d = 0.2 * (1 + 0.004) = 0.2008 -> u = 500 * 0.2008 + 320
    dist = np.array([0.1, 0.0, 0.0, 0.0, 0.0])
    uv = project_points(np.array([[0.2, 0.0, 1.0]]), I3, np.zeros(3), K, dist)
    np.testing.assert_allclose(uv, [[420.4, 240.0]], atol=1e-9)


def test_points_behind_the_camera_project_to_nan():
    uv = project_points(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), I3, np.zeros(3), K)
    assert np.all(np.isnan(uv[:2])) and np.all(np.isfinite(uv[2]))


def test_transform_points_by_hand():
    out = transform_points(np.array([[1.0, 2.0, 3.0]]), RZ90, np.array([0.5, 0.0, -1.0]))
    np.testing.assert_allclose(out, [[-1.5, 1.0, 2.0]])


def test_scale_intrinsics_follows_the_pixel_centre_convention():
    # a projected point at u must land at (u + 0.5) * s - 0.5 in the resized image
    pts = np.array([[0.1, -0.07, 0.8], [-0.2, 0.1, 1.3]])
    sx, sy = 0.5, 0.25
    uv = project_points(pts, I3, np.zeros(3), K)
    uv_scaled = project_points(pts, I3, np.zeros(3), scale_intrinsics(K, sx, sy))
    np.testing.assert_allclose(uv_scaled, (uv + 0.5) * [sx, sy] - 0.5)


def test_scale_intrinsics_by_hand():
    np.testing.assert_allclose(scale_intrinsics(K, 2.0, 2.0), [[1000, 0, 640.5], [0, 800, 480.5], [0, 0, 1]])


@pytest.mark.parametrize(
    "bad",
    [
        np.eye(2),
        np.full((3, 3), np.nan),
        np.diag([-1.0, 1.0, 1.0]),
        np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1.0]]),
    ],
)
def test_check_intrinsics_rejects_bad_matrices(bad):
    with pytest.raises(CameraError, match="K must"):
        check_intrinsics(bad)


def test_bad_shapes_raise_camera_error():
    with pytest.raises(CameraError, match="pts"):
        project_points(np.zeros((4, 2)), I3, np.zeros(3), K)
    with pytest.raises(CameraError, match="t must"):
        transform_points(np.zeros((4, 3)), I3, np.zeros(2))
    with pytest.raises(CameraError, match="scale"):
        scale_intrinsics(K, 0.0, 1.0)

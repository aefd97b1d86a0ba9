"""Camera helpers: projection (with and without distortion), transforms, intrinsics scaling."""

from __future__ import annotations

import numpy as np
import pytest

from hrpose_ros.geometry.camera import (
    CameraError,
    binned_roi_intrinsics,
    check_distortion,
    check_intrinsics,
    intrinsics_matrix,
    project_points,
    scale_intrinsics,
    transform_points,
    undistort_points,
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


# ------------------------------------------------------------------ binning and ROI (REP 104)

FISHEYE_D = np.array([0.08, -0.02, 0.004, -0.001])


def _scene_points() -> np.ndarray:
    return np.random.default_rng(7).uniform([-0.3, -0.2, 0.6], [0.3, 0.2, 1.5], size=(50, 3))


@pytest.mark.parametrize(
    ("x_offset", "y_offset", "binning_x", "binning_y"),
    [(0, 0, 2, 2), (100, 60, 1, 1), (100, 60, 2, 2), (37, 11, 3, 2), (0, 0, 4, 1)],
)
@pytest.mark.parametrize(
    "dist", [None, np.array([-0.2, 0.05, 0.001, -0.002, 0.0])], ids=["pinhole", "plumb_bob"]
)
def test_binned_roi_camera_sees_what_the_full_sensor_sees_through_the_readout(
    x_offset, y_offset, binning_x, binning_y, dist
):
    """Image pixel u covers sensor pixel u_s = x_offset + (u + 0.5) * b - 0.5 (pixel centres); D unchanged."""
    pts = _scene_points()
    sensor = project_points(pts, I3, np.zeros(3), K, dist)
    expected = np.empty_like(sensor)
    expected[:, 0] = (sensor[:, 0] - x_offset + 0.5) / binning_x - 0.5
    expected[:, 1] = (sensor[:, 1] - y_offset + 0.5) / binning_y - 0.5
    K_image = binned_roi_intrinsics(K, x_offset, y_offset, binning_x, binning_y)
    np.testing.assert_allclose(project_points(pts, I3, np.zeros(3), K_image, dist), expected, atol=1e-9)


def test_binned_roi_intrinsics_by_hand():
    # fx 500 -> 250; cx: (320 - 100 + 0.5) / 2 - 0.5 = 109.75; cy: (240 - 60 + 0.5) / 2 - 0.5 = 89.75
    K_image = binned_roi_intrinsics(K, 100, 60, 2, 2)
    np.testing.assert_allclose(K_image, [[250.0, 0.0, 109.75], [0.0, 200.0, 89.75], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(binned_roi_intrinsics(K), K)


def test_binning_below_one_is_refused():
    with pytest.raises(CameraError, match="binning"):
        binned_roi_intrinsics(K, binning_x=0)


# ------------------------------------------------------------------ fisheye (equidistant) and undistortion


def test_equidistant_projection_follows_the_fisheye_model_by_hand():
    # theta = atan(r) for r = 0.5; theta_d = theta (1 + k1 theta^2 + ...); x_d = theta_d / r * x
    x, r = np.array([0.3, 0.4]), 0.5
    theta = np.arctan(r)
    theta_d = theta * (1 + sum(k * theta ** (2 * (i + 1)) for i, k in enumerate(FISHEYE_D)))
    u = K[0, 0] * theta_d / r * x[0] + K[0, 2]
    v = K[1, 1] * theta_d / r * x[1] + K[1, 2]
    uv = project_points(np.array([[0.3, 0.4, 1.0]]), I3, np.zeros(3), K, FISHEYE_D, model="equidistant")
    np.testing.assert_allclose(uv, [[u, v]], atol=1e-9)


@pytest.mark.parametrize(
    ("model", "dist"),
    [
        ("equidistant", FISHEYE_D),
        ("plumb_bob", np.array([-0.2, 0.05, 0.001, -0.002, 0.01])),
        ("rational_polynomial", np.array([0.1, -0.05, 0.001, 0.002, 0.01, 0.05, 0.01, 0.001])),
    ],
)
def test_undistorted_points_are_where_a_pinhole_camera_sees_them(model, dist):
    pts = _scene_points()
    distorted = project_points(pts, I3, np.zeros(3), K, dist, model=model)
    pinhole = project_points(pts, I3, np.zeros(3), K)
    assert np.abs(distorted - pinhole).max() > 1.0  # the lens does move the points
    distorted[3] = np.nan
    out = undistort_points(distorted, K, dist, model)
    assert np.isnan(out[3]).all()
    np.testing.assert_allclose(np.delete(out, 3, axis=0), np.delete(pinhole, 3, axis=0), atol=1e-6)


@pytest.mark.parametrize(
    ("dist", "model", "fragment"),
    [
        (np.array([0.1, 0.0, 0.0, 0.0, 0.0]), "equidistant", "needs 4 coefficients"),
        (np.array([0.1, 0.0, 0.0]), "plumb_bob", "3"),
        (np.array([0.1, 0.0, 0.0, 0.0]), "fov", "distortion model"),
        (np.array([np.nan, 0.0, 0.0, 0.0]), "equidistant", "finite"),
    ],
)
def test_bad_distortion_is_refused_naming_the_problem(dist, model, fragment):
    with pytest.raises(CameraError, match=fragment):
        check_distortion(dist, model)


def test_all_zero_distortion_is_none():
    assert check_distortion(np.zeros(4), "equidistant") is None
    assert check_distortion(None) is None

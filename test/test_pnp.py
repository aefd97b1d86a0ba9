"""PnP: exact recovery from 4-9 points, distortion, RANSAC, and clean failure on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrpose_ros.geometry.camera import intrinsics_matrix, project_points
from hrpose_ros.geometry.decode import Instance
from hrpose_ros.geometry.keypoints import cuboid_keypoints
from hrpose_ros.geometry.metrics import rotation_error_deg
from hrpose_ros.geometry.pnp import PnPError, PoseEstimate, solve_instance_pose, solve_pnp

K = intrinsics_matrix(600.0, 610.0, 320.0, 240.0)
KP3 = cuboid_keypoints([-0.05, -0.03, -0.08], [0.05, 0.03, 0.08])


def _random_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R *= np.sign(np.linalg.det(R))
    return R, np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.15, 0.15), rng.uniform(0.5, 1.5)])


def _assert_pose(est: PoseEstimate | None, R: np.ndarray, t: np.ndarray, tol_deg: float = 1e-4) -> None:
    assert est is not None
    assert rotation_error_deg(est.R, R) < tol_deg
    np.testing.assert_allclose(est.t, t, atol=1e-6 + tol_deg * 1e-3)
    assert est.t.shape == (3,) and est.R.shape == (3, 3)


def test_nine_exact_points_give_the_pose_back():
    rng = np.random.default_rng(1)
    for _ in range(20):
        R, t = _random_pose(rng)
        est = solve_pnp(KP3, project_points(KP3, R, t, K), K)
        _assert_pose(est, R, t)
        assert est.num_points == 9 and est.reprojection_error_px < 1e-6


@pytest.mark.parametrize("rows", [[0, 3, 5, 6], [0, 1, 2, 3], [1, 2, 4, 7, 8]])
def test_four_or_five_points_suffice(rows):
    # [0, 1, 2, 3] is the planar face x = xmin
    rng = np.random.default_rng(2)
    for _ in range(10):
        R, t = _random_pose(rng)
        est = solve_pnp(KP3[rows], project_points(KP3[rows], R, t, K), K)
        _assert_pose(est, R, t, tol_deg=1e-3)


def test_nan_rows_are_ignored():
    R, t = _random_pose(np.random.default_rng(3))
    uv = project_points(KP3, R, t, K)
    uv[[1, 4, 6]] = np.nan
    est = solve_pnp(KP3, uv, K)
    _assert_pose(est, R, t)
    assert est.num_points == 6
    np.testing.assert_array_equal(est.point_indices, [0, 2, 3, 5, 7, 8])


def test_distortion_is_modelled():
    dist = np.array([-0.2, 0.05, 0.001, -0.002, 0.0])
    R, t = _random_pose(np.random.default_rng(4))
    uv = project_points(KP3, R, t, K, dist)
    _assert_pose(solve_pnp(KP3, uv, K, dist), R, t)
    assert rotation_error_deg(solve_pnp(KP3, uv, K).R, R) > 1e-3  # ignoring it would be wrong


def test_reprojection_error_is_the_rms_over_points():
    R, t = _random_pose(np.random.default_rng(5))
    uv = project_points(KP3, R, t, K) + np.random.default_rng(6).normal(0, 1.0, (9, 2))
    est = solve_pnp(KP3, uv, K)
    residual = project_points(KP3, est.R, est.t, K) - uv
    assert est.reprojection_error_px == pytest.approx(np.sqrt(np.mean(np.sum(residual**2, axis=1))))
    assert 0.1 < est.reprojection_error_px < 2.0


def test_ransac_rejects_a_gross_outlier():
    R, t = _random_pose(np.random.default_rng(7))
    uv = project_points(KP3, R, t, K)
    uv[2] += [60.0, -45.0]
    assert rotation_error_deg(solve_pnp(KP3, uv, K).R, R) > 0.5
    est = solve_pnp(KP3, uv, K, use_ransac=True)
    _assert_pose(est, R, t, tol_deg=1e-3)
    assert 2 not in est.point_indices and est.num_points == 8


@pytest.mark.parametrize(
    "case", ["three_points", "collinear", "coincident_2d", "nan_K", "zero_focal", "all_nan"]
)
def test_degenerate_input_gives_no_pose(case):
    R, t = _random_pose(np.random.default_rng(8))
    p3, K_used = KP3.copy(), K.copy()
    uv = project_points(p3, R, t, K)
    if case == "three_points":
        uv[3:] = np.nan
    elif case == "collinear":
        p3 = np.outer(np.linspace(-0.1, 0.1, 9), [1.0, 0.5, 0.2])
        uv = project_points(p3, R, t, K)
    elif case == "coincident_2d":
        uv[:] = [100.0, 100.0]
    elif case == "nan_K":
        K_used[0, 2] = np.nan
    elif case == "zero_focal":
        K_used[0, 0] = 0.0
    else:
        uv[:] = np.nan
    assert solve_pnp(p3, uv, K_used) is None


@pytest.mark.parametrize(
    ("p3", "p2", "k", "match"),
    [
        (np.zeros((9, 2)), np.zeros((9, 2)), K, "pts_3d"),
        (np.zeros((9, 3)), np.zeros((8, 2)), K, "pts_2d"),
        (np.zeros((9, 3)), np.zeros((9, 2)), np.eye(4), "K must"),
    ],
)
def test_malformed_arrays_raise_pnp_error(p3, p2, k, match):
    with pytest.raises(PnPError, match=match):
        solve_pnp(p3, p2, k)
    with pytest.raises(PnPError, match="dist"):
        solve_pnp(KP3, np.zeros((9, 2)), K, dist=np.zeros(3))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    st.lists(st.floats(-1e4, 1e4) | st.just(float("nan")), min_size=18, max_size=18),
    st.integers(0, 2**31 - 1),
)
def test_arbitrary_input_never_crashes_or_returns_nan(coords, seed):
    uv = np.array(coords).reshape(9, 2)
    p3 = KP3 + np.random.default_rng(seed).normal(0, 0.01, KP3.shape)
    est = solve_pnp(p3, uv, K)
    if est is not None:
        assert np.all(np.isfinite(est.R)) and np.all(np.isfinite(est.t)) and est.t[2] > 0
        assert np.isfinite(est.reprojection_error_px)


def test_solve_instance_pose_uses_the_found_keypoints():
    R, t = _random_pose(np.random.default_rng(9))
    uv = project_points(KP3, R, t, K)
    uv[0] = np.nan
    inst = Instance(class_index=0, keypoints=uv, scores=np.ones(9), confidence=1.0)
    est = solve_instance_pose(inst, KP3, K)
    _assert_pose(est, R, t)
    assert est.num_points == 8
    with pytest.raises(PnPError, match="keypoints_3d"):
        solve_instance_pose(inst, KP3[:8], K)


def test_fisheye_keypoints_give_the_pose_back():
    """Keypoints projected through an equidistant (fisheye) lens, solved as equidistant."""
    rng = np.random.default_rng(5)
    D = np.array([0.12, -0.03, 0.01, -0.002])
    for _ in range(10):
        R, t = _random_pose(rng)
        uv = project_points(KP3, R, t, K, D, model="equidistant")
        _assert_pose(solve_pnp(KP3, uv, K, D, distortion_model="equidistant"), R, t)
        instance = Instance(class_index=0, keypoints=uv, scores=np.ones(9), confidence=1.0)
        _assert_pose(solve_instance_pose(instance, KP3, K, D, distortion_model="equidistant"), R, t)
        # the same coefficients read as pinhole (plumb_bob k1 k2 p1 p2) give another pose
        wrong = solve_pnp(KP3, uv, K, D)
        assert wrong is None or rotation_error_deg(wrong.R, R) > 1e-2 or np.abs(wrong.t - t).max() > 1e-4


def test_unknown_distortion_model_is_refused():
    with pytest.raises(PnPError, match="distortion_model"):
        solve_pnp(KP3, project_points(KP3, np.eye(3), np.array([0, 0, 1.0]), K), K, distortion_model="fov")

"""Pose metrics checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from hrpose_ros.geometry.camera import intrinsics_matrix
from hrpose_ros.geometry.metrics import (
    MetricError,
    add,
    add_passed,
    adi,
    at_true_depth,
    depth_error,
    pose_error_add_or_adds,
    proj,
    proj_passed,
    rotation_error_deg,
    translation_error,
)

I3 = np.eye(3)
RZ180 = np.diag([-1.0, -1.0, 1.0])
T = np.array([0.0, 0.0, 1.0])
# symmetric under a half turn about z (a cross in the xy plane), diameter 0.2 m
CROSS = np.array([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, -0.1, 0.0]])
K = intrinsics_matrix(500.0, 500.0, 320.0, 240.0)


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def test_add_is_zero_at_the_true_pose():
    assert add(_rot_z(17), T, _rot_z(17), T, CROSS) == 0.0


def test_add_of_a_translation_is_its_length():
    assert add(I3, T + np.array([0.0, 0.03, 0.04]), I3, T, CROSS) == pytest.approx(0.05)


def test_add_of_a_half_turn_by_hand():
    # every point of the cross moves to its opposite: distance 0.2
    assert add(RZ180, T, I3, T, CROSS) == pytest.approx(0.2)


def test_flipped_symmetric_object_passes_adds_and_fails_add():
    diameter = 0.2
    err_add = pose_error_add_or_adds(RZ180, T, I3, T, CROSS, symmetric=False)
    err_adds = pose_error_add_or_adds(RZ180, T, I3, T, CROSS, symmetric=True)
    assert err_adds == pytest.approx(0.0, abs=1e-12)
    assert add_passed(err_adds, diameter)
    assert not add_passed(err_add, diameter)


def test_adi_by_hand_for_a_small_rotation():
    # a quarter turn maps the cross onto itself; 10 degrees moves each point 2*0.1*sin(5 deg) from its match
    assert adi(_rot_z(90), T, I3, T, CROSS) == pytest.approx(0.0, abs=1e-12)
    assert adi(_rot_z(10), T, I3, T, CROSS) == pytest.approx(0.2 * np.sin(np.radians(5)))


def test_adi_never_exceeds_add():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(200, 3)) * 0.05
    for _ in range(20):
        R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        R *= np.sign(np.linalg.det(R))
        t = T + rng.normal(size=3) * 0.01
        assert adi(R, t, I3, T, pts) <= add(R, t, I3, T, pts) + 1e-12


def test_proj_of_a_sideways_shift_by_hand():
    # 1 cm sideways at 1 m with fx = 500: every projection moves 5 px
    err = proj(I3, T + np.array([0.01, 0.0, 0.0]), I3, T, K, CROSS)
    assert err == pytest.approx(5.0)
    assert not proj_passed(err)
    assert proj_passed(4.99)


def test_proj_is_infinite_for_a_pose_behind_the_camera():
    assert proj(I3, -T, I3, T, K, CROSS) == float("inf")


def test_rotation_and_translation_errors_by_hand():
    assert rotation_error_deg(_rot_z(30) @ _rot_z(5), _rot_z(5)) == pytest.approx(30.0)
    assert rotation_error_deg(RZ180, I3) == pytest.approx(180.0)
    assert translation_error([3.0, 4.0, 1.0], [0.0, 0.0, 1.0]) == pytest.approx(5.0)


def test_depth_error_is_signed_and_relative():
    assert depth_error([0.1, 0.0, 0.78], [0.0, 0.2, 0.75]) == pytest.approx(0.04)
    assert depth_error([0.0, 0.0, 0.6], [0.0, 0.0, 0.75]) == pytest.approx(-0.2)


def test_at_true_depth_slides_along_the_estimated_ray():
    t_est = np.array([0.1, -0.05, 0.8])
    moved = at_true_depth(t_est, [0.3, 0.3, 0.6])
    assert moved == pytest.approx([0.075, -0.0375, 0.6])
    # the object's origin stays on the same pixel: only the depth of the estimate changes
    assert proj(I3, moved, I3, t_est, K, np.zeros((1, 3))) == pytest.approx(0.0, abs=1e-9)


def test_add_passed_uses_ten_percent_of_the_diameter():
    assert add_passed(0.0099, 0.1)
    assert not add_passed(0.0101, 0.1)
    assert add_passed(0.019, 0.1, fraction=0.2)


def test_bad_metric_input_raises_metric_error():
    with pytest.raises(MetricError, match="pts"):
        add(I3, T, I3, T, np.zeros((3, 2)))
    with pytest.raises(MetricError, match="R_est"):
        add(np.eye(2), T, I3, T, CROSS)
    with pytest.raises(MetricError, match="t_est"):
        translation_error([1.0, 2.0], T)
    with pytest.raises(MetricError, match="diameter"):
        add_passed(0.01, 0.0)
    with pytest.raises(MetricError, match="ground-truth depth"):
        depth_error(T, [0.0, 0.0, 0.0])
    with pytest.raises(MetricError, match="estimated depth"):
        at_true_depth([0.0, 0.0, -1.0], T)
    with pytest.raises(MetricError, match="t_est"):
        depth_error([1.0, 2.0], T)

"""Pose priors of the synthetic generator: uniform rotations, and objects standing on a table."""

from __future__ import annotations

import numpy as np
import pytest

from hrpose_ros.data.pose_priors import PosePrior, random_rotation, table_to_camera


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _upright_draws(prior: PosePrior, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(tables, rotations): one scene and one object per draw."""
    rng = np.random.default_rng(seed)
    tables, rotations = [], []
    for _ in range(count):
        table = prior.draw_scene(rng)
        tables.append(table)
        rotations.append(prior.draw(rng, table))
    return np.array(tables), np.array(rotations)


def _proper(Rs: np.ndarray) -> None:
    np.testing.assert_allclose(Rs @ Rs.transpose(0, 2, 1), np.broadcast_to(np.eye(3), Rs.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(Rs), 1.0, atol=1e-12)


def test_random_rotations_are_proper_and_spread():
    rng = np.random.default_rng(0)
    Rs = np.array([random_rotation(rng) for _ in range(500)])
    _proper(Rs)
    np.testing.assert_allclose(Rs.mean(axis=0), 0.0, atol=0.1)  # uniform on SO(3) has zero mean


def test_the_any_prior_draws_nothing_per_scene_so_old_seeds_give_old_scenes():
    rng, fresh = np.random.default_rng(5), np.random.default_rng(5)
    assert PosePrior().draw_scene(rng) is None
    np.testing.assert_array_equal(PosePrior().draw(rng, None), random_rotation(fresh))


@pytest.mark.parametrize(
    ("elevation_deg", "roll_deg", "up_in_camera"),
    [
        (0.0, 0.0, [0.0, -1.0, 0.0]),  # level camera: the table's normal is image-up
        (90.0, 0.0, [0.0, 0.0, -1.0]),  # straight down: the normal points back at the camera
        (0.0, 90.0, [1.0, 0.0, 0.0]),  # rolled a quarter turn about the optical axis
    ],
)
def test_table_to_camera_puts_the_normal_where_the_camera_sees_it(elevation_deg, roll_deg, up_in_camera):
    R = table_to_camera(np.deg2rad(elevation_deg), np.deg2rad(roll_deg))
    _proper(R[None])
    np.testing.assert_allclose(R @ [0.0, 0.0, 1.0], up_in_camera, atol=1e-12)


def test_upright_objects_lean_at_most_the_tilt_and_the_camera_stays_in_its_elevations():
    prior = PosePrior("upright", elevation_deg=(20.0, 70.0), camera_roll_deg=10.0, tilt_deg=12.0)
    tables, Rs = _upright_draws(prior, 2000)
    _proper(Rs)
    normal = tables[:, :, 2]  # the table's up in camera coordinates
    lean = _angle_deg(Rs[:, :, 2], normal)  # the object's z (its up axis)
    assert lean.max() <= 12.0 + 1e-9 and lean.max() > 10.0  # the whole range is used
    elevation = np.degrees(np.arcsin(-normal[:, 2]))  # the normal's part towards the camera
    assert elevation.min() >= 20.0 - 1e-9 and elevation.max() <= 70.0 + 1e-9
    assert elevation.min() < 22.0 and elevation.max() > 68.0
    # the image-plane direction of the normal: image-up, rolled by at most 10 degrees
    roll = np.degrees(np.arctan2(normal[:, 0], -normal[:, 1]))
    assert np.abs(roll).max() <= 10.0 + 1e-9 and np.abs(roll).max() > 9.0


def test_upright_objects_turn_all_the_way_round_their_up_axis():
    prior = PosePrior("upright", tilt_deg=0.0)
    tables, Rs = _upright_draws(prior, 2000, seed=1)
    local = np.einsum("nji,njk->nik", tables, Rs)  # object axes in the table frame
    heading = np.arctan2(local[:, 1, 0], local[:, 0, 0])  # where the object's x points on the table
    counts, _ = np.histogram(heading, bins=8, range=(-np.pi, np.pi))
    assert counts.min() > 150  # uniform yaw: 250 per bin expected
    np.testing.assert_allclose(local[:, :, 2], np.broadcast_to([0.0, 0.0, 1.0], (2000, 3)), atol=1e-12)


@pytest.mark.parametrize("axis", ["x", "-y", "-z", "y"])
def test_another_up_axis_is_the_one_that_points_up(axis):
    prior = PosePrior("upright", tilt_deg=0.0, up_axis=axis)
    tables, Rs = _upright_draws(prior, 50)
    v = np.zeros(3)
    v["xyz".index(axis[-1])] = -1.0 if axis.startswith("-") else 1.0
    np.testing.assert_allclose(Rs @ v, tables[:, :, 2], atol=1e-12)


def test_bad_prior_values_are_named():
    with pytest.raises(ValueError, match="pose prior"):
        PosePrior("sideways")
    with pytest.raises(ValueError, match="elevation_deg"):
        PosePrior("upright", elevation_deg=(60.0, 10.0))
    with pytest.raises(ValueError, match="camera_roll_deg"):
        PosePrior("upright", camera_roll_deg=-1.0)
    with pytest.raises(ValueError, match="tilt_deg"):
        PosePrior("upright", tilt_deg=120.0)
    with pytest.raises(ValueError, match="up_axis"):
        PosePrior("upright", up_axis="w")

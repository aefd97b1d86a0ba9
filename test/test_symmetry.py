"""Canonical poses of symmetric objects (geometry core)."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import rotation
from scipy.spatial.transform import Rotation

from hrpose_ros.geometry.symmetry import (
    SymmetryError,
    canonical_pose,
    closest_equivalent,
    equivalent_poses,
    parse_symmetry,
)

HALF_TURN_Z = parse_symmetry([-1, 0, 0, 0.002, 0, -1, 0, -0.001, 0, 0, 1, 0, 0, 0, 0, 1])


def _quarter_turns() -> list[np.ndarray]:
    out = []
    for k in (1, 2, 3):
        c, s = np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)
        out.append(parse_symmetry([c, -s, 0, 0, s, c, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_every_equivalent_pose_maps_to_the_same_canonical_pose(seed: int) -> None:
    rng = np.random.default_rng(seed)
    R, t = rotation(rng), rng.uniform(-0.2, 0.2, 3) + np.array([0.0, 0.0, 0.8])
    symmetries = _quarter_turns()
    canon = canonical_pose(R, t, symmetries)
    for S in symmetries:
        other = canonical_pose(R @ S[:3, :3], t + R @ S[:3, 3], symmetries)
        np.testing.assert_allclose(other[0], canon[0], atol=1e-12)
        np.testing.assert_allclose(other[1], canon[1], atol=1e-12)
    assert np.trace(canon[0]) == pytest.approx(max(np.trace(R @ S[:3, :3]) for S in [np.eye(4), *symmetries]))


def test_equivalent_pose_puts_the_model_points_in_the_same_place() -> None:
    """(R S_R, t + R S_t) moves the symmetric copy of every model point where (R, t) put it."""
    rng = np.random.default_rng(1)
    R, t = rotation(rng), np.array([0.0, 0.1, 0.9])
    pts = rng.uniform(-0.05, 0.05, (30, 3))
    R2, t2 = canonical_pose(R, t, [HALF_TURN_Z])
    if np.allclose(R2, R):
        R, t = R @ HALF_TURN_Z[:3, :3], t + R @ HALF_TURN_Z[:3, 3]  # start from the other one
        R2, t2 = canonical_pose(R, t, [HALF_TURN_Z])
    # S maps each point p onto its twin S p; the canonical pose sees the twin where R saw p
    twins = pts @ HALF_TURN_Z[:3, :3].T + HALF_TURN_Z[:3, 3]
    np.testing.assert_allclose(twins @ R2.T + t2, pts @ R.T + t, atol=1e-12)


def test_no_symmetries_keeps_the_pose() -> None:
    R = rotation(np.random.default_rng(2))
    t = np.array([0.1, 0.0, 0.5])
    R2, t2 = canonical_pose(R, t, [])
    np.testing.assert_array_equal(R2, R)
    np.testing.assert_array_equal(t2, t)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([1, 0, 0], "16 finite numbers"),
        ([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1], "last row"),
        ([2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "proper rotation"),
        ([-1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "proper rotation"),  # a mirror
    ],
)
def test_bad_symmetries_are_refused(values: list, match: str) -> None:
    with pytest.raises(SymmetryError, match=match):
        parse_symmetry(values)


def _angle(Ra: np.ndarray, Rb: np.ndarray) -> float:
    return float(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1)))


@pytest.mark.parametrize("seed", range(5))
def test_closest_equivalent_is_the_twin_nearest_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    R, t = rotation(rng), np.array([0.0, 0.0, 0.7])
    symmetries = _quarter_turns()
    twins = [(R, t)] + [(R @ S[:3, :3], t + R @ S[:3, 3]) for S in symmetries]
    for R_twin, t_twin in twins:
        # a reference a few degrees off this twin picks this twin, whichever equivalent is passed in
        ref = R_twin @ Rotation.from_rotvec(rng.normal(size=3) * 0.05).as_matrix()
        R_eq, t_eq = closest_equivalent(R, t, symmetries, ref)
        np.testing.assert_allclose(R_eq, R_twin, atol=1e-12)
        np.testing.assert_allclose(t_eq, t_twin, atol=1e-12)
        assert _angle(R_eq, ref) == pytest.approx(min(_angle(Rt, ref) for Rt, _ in twins))


def test_closest_equivalent_broadcasts_references_against_poses() -> None:
    rng = np.random.default_rng(9)
    R = np.stack([rotation(rng) for _ in range(4)])  # 4 detections
    t = rng.uniform(-0.1, 0.1, (4, 3))
    refs = np.stack([rotation(rng) for _ in range(3)])  # 3 tracks
    R_eq, t_eq = closest_equivalent(R[None], t[None], [HALF_TURN_Z], refs[:, None])
    assert R_eq.shape == (3, 4, 3, 3) and t_eq.shape == (3, 4, 3)
    for i in range(3):
        for j in range(4):
            one = closest_equivalent(R[j], t[j], [HALF_TURN_Z], refs[i])
            np.testing.assert_allclose(R_eq[i, j], one[0], atol=1e-12)
            np.testing.assert_allclose(t_eq[i, j], one[1], atol=1e-12)
    same, _ = closest_equivalent(R[None], t[None], [], refs[:, None])
    np.testing.assert_array_equal(same, np.broadcast_to(R, (3, 4, 3, 3)))


def test_equivalent_poses_list_the_pose_first_then_each_symmetric_twin() -> None:
    rng = np.random.default_rng(7)
    R, t = rotation(rng), np.array([0.05, -0.02, 0.9])
    symmetries = _quarter_turns()
    R_eq, t_eq = equivalent_poses(R, t, symmetries)
    assert R_eq.shape == (4, 3, 3) and t_eq.shape == (4, 3)
    np.testing.assert_allclose(R_eq[0], R, atol=1e-15)
    np.testing.assert_allclose(t_eq[0], t, atol=1e-15)
    for k, S in enumerate(symmetries, start=1):
        np.testing.assert_allclose(R_eq[k], R @ S[:3, :3], atol=1e-12)
        np.testing.assert_allclose(t_eq[k], t + R @ S[:3, 3], atol=1e-12)
    # the canonical pose is one of them, and none without symmetries but the pose itself
    canon = canonical_pose(R, t, symmetries)
    assert min(np.abs(R_eq - canon[0]).max() for R_eq in R_eq) < 1e-12
    R_one, t_one = equivalent_poses(R, t, [])
    assert R_one.shape == (1, 3, 3) and np.allclose(R_one[0], R) and np.allclose(t_one[0], t)

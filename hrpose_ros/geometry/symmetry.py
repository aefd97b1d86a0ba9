"""One pose among the symmetric equivalents of an object: canonical, or closest to a reference.

Why: the eggbox and the glue of LINEMOD look the same after a half turn about their z
axis, so one image fits two poses whose cuboid corners swap places. Training targets made
from either pose at random teach the network contradicting corners for the same view.
Choosing, for every view, the equivalent pose closest to the camera's own orientation
(largest trace of R, the smallest rotation angle) gives one answer per view. ADD-S, the
metric for symmetric objects, is the same for all equivalents.

A symmetry is a rigid transform ``(S_R, S_t)`` of the object frame that maps the model onto
itself (BOP ``symmetries_discrete``, here with the translation in metres). A pose ``(R, t)``
is then equivalent to ``(R S_R, t + R S_t)``.

The tracker asks the same question with another reference: which equivalent of a new
detection is closest to the track's own rotation, so that its filter never averages a
pose with its half-turned twin (the canonical pose is the one closest to the identity).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SymmetryError", "canonical_pose", "closest_equivalent", "equivalent_poses", "parse_symmetry"]


_IDENTITY = np.eye(3)[None]
_NO_SHIFT = np.zeros((1, 3))


class SymmetryError(ValueError):
    """A symmetry transform is not a rigid 4x4 matrix."""


def parse_symmetry(values: Sequence[float]) -> np.ndarray:
    """16 numbers (row-major 4x4, translation in metres) -> (4, 4) float64, checked rigid."""
    m = np.asarray(values, dtype=np.float64)
    if m.size != 16 or not np.all(np.isfinite(m)):
        raise SymmetryError(f"a symmetry needs 16 finite numbers (row-major 4x4), got {len(m.ravel())}")
    m = m.reshape(4, 4)
    R = m[:3, :3]
    if not np.allclose(m[3], (0.0, 0.0, 0.0, 1.0), atol=1e-6):
        raise SymmetryError(f"the last row of a symmetry must be 0 0 0 1, got {m[3].tolist()}")
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-3) or np.linalg.det(R) < 0:
        raise SymmetryError("the rotation part of a symmetry must be a proper rotation")
    return m


def closest_equivalent(
    R: np.ndarray, t: np.ndarray, symmetries: Sequence[np.ndarray], R_ref: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The equivalent of pose ``(R, t)`` whose rotation is closest to ``R_ref``.

    Closest = largest ``trace(R_ref^T R S_R)`` (the smallest rotation angle between them);
    the pose itself wins ties. Batched: ``R`` (..., 3, 3), ``t`` (..., 3) and ``R_ref``
    (..., 3, 3) broadcast against each other (the tracker scores every track against
    every detection in one call).

    Args:
        symmetries: (4, 4) transforms of :func:`parse_symmetry` (the identity is implied).

    Returns:
        (R_eq (..., 3, 3), t_eq (..., 3)) float64.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    R_ref = np.asarray(R_ref, dtype=np.float64)
    shape = np.broadcast_shapes(R.shape, R_ref.shape)
    R_all = np.broadcast_to(R, shape)
    t_all = np.broadcast_to(t, (*shape[:-2], 3))
    if not symmetries:
        return R_all.copy(), t_all.copy()
    S_R, S_t = _with_identity(symmetries)
    relative = np.swapaxes(R_ref, -1, -2) @ R  # trace(R_ref^T R S) = sum_ij relative_ij S_ji
    score = np.einsum("...ij,kji->...k", relative, S_R)
    score[..., 1:] -= 1e-12  # the pose itself on a tie
    best = np.argmax(score, axis=-1)
    return R_all @ S_R[best], t_all + np.einsum("...ij,...j->...i", R_all, S_t[best])


def _with_identity(symmetries: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (1 + S, 3, 3) and shifts (1 + S, 3) of the identity and the symmetries."""
    S = np.asarray(symmetries, dtype=np.float64).reshape(-1, 4, 4)
    return np.concatenate([_IDENTITY, S[:, :3, :3]]), np.concatenate([_NO_SHIFT, S[:, :3, 3]])


def equivalent_poses(
    R: np.ndarray, t: np.ndarray, symmetries: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Every equivalent of one pose ``(R, t)``, the pose itself first.

    Why: a training loss that accepts any of them (the least error over the equivalents)
    does not ask the network to tell apart views that look the same.

    Returns:
        (R_eq (1 + S, 3, 3), t_eq (1 + S, 3)) float64, S = ``len(symmetries)``.
    """
    R = np.asarray(R, dtype=np.float64).reshape(3, 3)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    S_R, S_t = _with_identity(symmetries)
    return R @ S_R, t + S_t @ R.T


def canonical_pose(
    R: np.ndarray, t: np.ndarray, symmetries: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The equivalent of pose ``(R, t)`` (object -> camera, metres) with the largest trace.

    ``symmetries`` are (4, 4) transforms of :func:`parse_symmetry`; the identity is always
    a candidate, so an object without symmetries keeps its pose.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    return closest_equivalent(R, t, symmetries, np.eye(3))

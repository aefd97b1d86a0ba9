"""One canonical pose among the symmetric equivalents of an object.

Why: the eggbox and the glue of LINEMOD look the same after a half turn about their z
axis, so one image fits two poses whose cuboid corners swap places. Training targets made
from either pose at random teach the network contradicting corners for the same view.
Choosing, for every view, the equivalent pose closest to the camera's own orientation
(largest trace of R, the smallest rotation angle) gives one answer per view. ADD-S, the
metric for symmetric objects, is the same for all equivalents.

A symmetry is a rigid transform ``(S_R, S_t)`` of the object frame that maps the model onto
itself (BOP ``symmetries_discrete``, here with the translation in metres). A pose ``(R, t)``
is then equivalent to ``(R S_R, t + R S_t)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SymmetryError", "canonical_pose", "parse_symmetry"]


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


def canonical_pose(
    R: np.ndarray, t: np.ndarray, symmetries: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The equivalent of pose ``(R, t)`` (object -> camera, metres) with the largest trace.

    ``symmetries`` are (4, 4) transforms of :func:`parse_symmetry`; the identity is always
    a candidate, so an object without symmetries keeps its pose.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    best_R, best_t, best = R, t, float(np.trace(R))
    for S in symmetries:
        cand_R = R @ S[:3, :3]
        score = float(np.trace(cand_R))
        if score > best + 1e-12:
            best_R, best_t, best = cand_R, t + R @ S[:3, 3], score
    return best_R, best_t

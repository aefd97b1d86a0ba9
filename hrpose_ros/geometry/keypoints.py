"""The keypoint contract: 8 cuboid corners + the centroid, in one documented order.

Every consumer (targets, decoder, PnP, markers, overlay, export metadata) imports the
order from here, so a network trained with it decodes the same way everywhere.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = [
    "CUBOID_EDGES",
    "NUM_CORNERS",
    "NUM_KEYPOINTS",
    "VECTOR_CHANNELS_PER_CLASS",
    "Keypoint",
    "cuboid_keypoints",
    "keypoint_names",
]


class Keypoint(IntEnum):
    """Index of each keypoint in belief maps and keypoint arrays.

    Corner ``k`` (0..7) takes the maximum of the object's bounding box along x if
    ``k & 4``, along y if ``k & 2`` and along z if ``k & 1``, the minimum otherwise
    (object frame). The centroid is the centre of the bounding box.
    """

    CORNER_XMIN_YMIN_ZMIN = 0
    CORNER_XMIN_YMIN_ZMAX = 1
    CORNER_XMIN_YMAX_ZMIN = 2
    CORNER_XMIN_YMAX_ZMAX = 3
    CORNER_XMAX_YMIN_ZMIN = 4
    CORNER_XMAX_YMIN_ZMAX = 5
    CORNER_XMAX_YMAX_ZMIN = 6
    CORNER_XMAX_YMAX_ZMAX = 7
    CENTROID = 8


NUM_CORNERS = 8
"""Corners of the 3D bounding box; each has a vector-field channel pair."""

NUM_KEYPOINTS = NUM_CORNERS + 1
"""Belief-map channels per class: the corners plus the centroid."""

VECTOR_CHANNELS_PER_CLASS = 2 * NUM_CORNERS
"""Vector-field channels per class: (dx, dy) for corner k at 2k, 2k + 1."""

CUBOID_EDGES: tuple[tuple[int, int], ...] = tuple(
    (a, a | bit) for a in range(NUM_CORNERS) for bit in (1, 2, 4) if not a & bit
)
"""The 12 edges of the cuboid as pairs of corner indices (for markers and overlays)."""


def cuboid_keypoints(bbox_min: np.ndarray, bbox_max: np.ndarray) -> np.ndarray:
    """Return the 9 keypoints of an axis-aligned bounding box, in ``Keypoint`` order.

    Args:
        bbox_min: (3,) minimum corner, object frame, metres.
        bbox_max: (3,) maximum corner, object frame, metres.

    Returns:
        (9, 3) float64 array: the 8 corners then the centroid.
    """
    lo = np.asarray(bbox_min, dtype=np.float64).reshape(-1)
    hi = np.asarray(bbox_max, dtype=np.float64).reshape(-1)
    if lo.shape != (3,) or hi.shape != (3,):
        raise ValueError(f"bbox_min and bbox_max must have shape (3,), got {lo.shape}, {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
        raise ValueError(f"bounding box must be finite with max > min, got min={lo}, max={hi}")
    corners = np.array(
        [
            [hi[0] if k & 4 else lo[0], hi[1] if k & 2 else lo[1], hi[2] if k & 1 else lo[2]]
            for k in range(NUM_CORNERS)
        ]
    )
    return np.vstack([corners, (lo + hi) / 2.0])


def keypoint_names() -> list[str]:
    """Names of the keypoints in index order (for metadata files and logs)."""
    return [k.name.lower() for k in Keypoint]

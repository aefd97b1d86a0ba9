"""Which object rotations the synthetic generator draws: anything, or standing on a table.

Why a prior at all: a network learns which corner is which from how each side of an object
looks, so every rotation it may meet must be in its training data, and every rotation it
will never meet costs training time for nothing. Two priors:

- ``any``: uniform on SO(3), for objects that can lie in any orientation (bins, hands).
- ``upright``: the object stands on a table (its ``up_axis`` along the table's normal, up to
  ``tilt_deg``), turned by any angle about that normal, and the camera looks at the table
  from ``elevation_deg`` above its plane, rolled by up to ``camera_roll_deg`` about its
  optical axis. This is how LINEMOD and LINEMOD-Occluded were captured (objects on a table,
  a hand-held camera on the upper hemisphere; their meshes have z up) and how a
  robot camera sees a table top. It spans about a twelfth of SO(3).

All angles are drawn from ``rng`` in a fixed order, so a seed gives the same scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["POSE_PRIORS", "UP_AXES", "PosePrior", "random_rotation", "table_to_camera"]

POSE_PRIORS = ("any", "upright")
UP_AXES = ("x", "y", "z", "-x", "-y", "-z")


def _rotation():
    """scipy's Rotation, imported on first use (the data layer loads scipy lazily)."""
    from scipy.spatial.transform import Rotation  # noqa: PLC0415

    return Rotation


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed rotation (normalised Gaussian quaternion), (3, 3)."""
    w, x, y, z = rng.normal(size=4)  # drawn in this order so a seed gives the same scenes as before
    return _rotation().from_quat([x, y, z, w]).as_matrix()


def table_to_camera(elevation_rad: float, roll_rad: float = 0.0) -> np.ndarray:
    """Rotation from a table frame (z up) to the optical frame (x right, y down, z forward)
    of a camera that looks down at the table at ``elevation_rad`` above its plane (0: level,
    pi/2: straight down) and is rolled by ``roll_rad`` about its optical axis."""
    up = np.array([0.0, -np.cos(elevation_rad), -np.sin(elevation_rad)])  # the table's normal
    x = np.array([1.0, 0.0, 0.0])
    level = np.stack([x, np.cross(up, x), up], axis=1)  # columns: the table's axes
    return _rotation().from_rotvec([0.0, 0.0, roll_rad]).as_matrix() @ level


def _up_to_z(axis: str) -> np.ndarray:
    """Rotation that takes the object's ``axis`` onto +z (identity for ``z``)."""
    sign = -1.0 if axis.startswith("-") else 1.0
    v = np.zeros(3)
    v["xyz".index(axis[-1])] = sign
    if np.allclose(v, [0, 0, 1]):
        return np.eye(3)
    if np.allclose(v, [0, 0, -1]):
        return _rotation().from_rotvec([np.pi, 0.0, 0.0]).as_matrix()
    rotvec = np.cross(v, [0.0, 0.0, 1.0])
    return _rotation().from_rotvec(rotvec / np.linalg.norm(rotvec) * np.pi / 2).as_matrix()


@dataclass(frozen=True)
class PosePrior:
    """How object rotations are drawn (module docstring).

    Attributes:
        kind: ``any`` or ``upright``.
        elevation_deg: (min, max) camera elevation above the table plane (``upright``).
        camera_roll_deg: max absolute camera roll about the optical axis (``upright``).
        tilt_deg: max angle between an object's up axis and the table normal (``upright``).
        up_axis: the object-frame axis that points up when it stands (BOP LINEMOD: ``z``).
    """

    kind: str = "any"
    elevation_deg: tuple[float, float] = (0.0, 90.0)
    camera_roll_deg: float = 30.0
    tilt_deg: float = 15.0
    up_axis: str = "z"

    def __post_init__(self) -> None:
        if self.kind not in POSE_PRIORS:
            raise ValueError(f"pose prior must be one of {POSE_PRIORS}, got {self.kind!r}")
        lo, hi = self.elevation_deg
        if not -90.0 <= lo <= hi <= 90.0:
            raise ValueError(f"elevation_deg must be (min, max) within -90..90, got {self.elevation_deg}")
        if not 0.0 <= self.camera_roll_deg <= 180.0:
            raise ValueError(f"camera_roll_deg must be in 0..180, got {self.camera_roll_deg}")
        if not 0.0 <= self.tilt_deg <= 90.0:
            raise ValueError(f"tilt_deg must be in 0..90, got {self.tilt_deg}")
        if self.up_axis not in UP_AXES:
            raise ValueError(f"up_axis must be one of {UP_AXES}, got {self.up_axis!r}")

    def draw_scene(self, rng: np.random.Generator) -> np.ndarray | None:
        """The table-to-camera rotation of one image (``upright``); None, drawing nothing, for ``any``."""
        if self.kind == "any":
            return None
        elevation = np.deg2rad(rng.uniform(*self.elevation_deg))
        roll = np.deg2rad(rng.uniform(-self.camera_roll_deg, self.camera_roll_deg))
        return table_to_camera(elevation, roll)

    def draw(self, rng: np.random.Generator, table: np.ndarray | None) -> np.ndarray:
        """One object's rotation (object to camera), (3, 3), in the scene of ``draw_scene``."""
        if table is None:
            return random_rotation(rng)
        yaw = rng.uniform(0.0, 2.0 * np.pi)
        heading = rng.uniform(0.0, 2.0 * np.pi)  # the horizontal axis the object leans about
        tilt = np.deg2rad(rng.uniform(0.0, self.tilt_deg))
        axis = np.array([np.cos(heading), np.sin(heading), 0.0])
        lean = _rotation().from_rotvec(tilt * axis).as_matrix()
        turn = _rotation().from_rotvec([0.0, 0.0, yaw]).as_matrix()
        return table @ lean @ turn @ _up_to_z(self.up_axis)

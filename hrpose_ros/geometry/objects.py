"""Object catalogue: the classes the network knows, read from ``config/objects.yaml``.

Each class has a name, an id, 9 keypoints (``keypoints.Keypoint`` order, metres),
a diameter, a symmetry flag (with optional discrete symmetries) and a colour.
Keypoints come from the mesh's bounding box when the mesh file exists, otherwise from
the cuboid given in the file. See the comment block at the top of ``config/objects.yaml`` for the file format.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS, Keypoint, cuboid_keypoints
from hrpose_ros.geometry.symmetry import SymmetryError, parse_symmetry

__all__ = [
    "BBOX_TOLERANCE_M",
    "MESH_DIR_ENV",
    "MESH_UNITS",
    "Catalogue",
    "CatalogueError",
    "ObjectSpec",
    "load_catalogue",
    "load_mesh_points",
    "mesh_diameter",
]

_LOG = logging.getLogger(__name__)

MESH_DIR_ENV = "HRPOSE_MESH_DIR"
"""Environment variable that overrides the catalogue's ``mesh_dir``."""

MESH_UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001}
"""Metres per mesh unit, for the ``mesh_units`` key."""

BBOX_TOLERANCE_M = 1e-3
"""Largest allowed difference between a mesh's bounding box and the cuboid given for it."""

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENTRY_KEYS = {"name", "id", "mesh", "bbox_min", "bbox_size", "diameter", "symmetric", "symmetries", "color"}
_TOP_KEYS = {"mesh_dir", "mesh_units", "objects"}


class CatalogueError(ValueError):
    """The object catalogue (or one entry of it) is invalid; the message names the entry and field."""


@dataclass(frozen=True, eq=False)
class ObjectSpec:
    """One object class.

    Attributes:
        name: class name (letters, digits, underscore), used in TF frame names.
        id: integer id (BOP obj_id for BOP datasets).
        keypoints: (9, 3) float64 keypoints in ``Keypoint`` order, object frame, metres.
        diameter: largest distance between two model points, metres.
        symmetric: evaluate with ADD-S instead of ADD.
        color: (r, g, b) floats in 0..1.
        mesh_path: mesh file when it exists, else None.
        mesh_units: unit of the mesh file (a key of ``MESH_UNITS``).
        symmetries: discrete symmetries, (4, 4) rigid transforms of the object frame
            (metres) that map the object onto itself; training picks one canonical pose
            among them (``geometry.symmetry``).
    """

    name: str
    id: int
    keypoints: np.ndarray
    diameter: float
    symmetric: bool
    color: tuple[float, float, float]
    mesh_path: Path | None = None
    mesh_units: str = "mm"
    symmetries: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        kp = np.array(self.keypoints, dtype=np.float64)
        if kp.shape != (NUM_KEYPOINTS, 3) or not np.all(np.isfinite(kp)):
            raise CatalogueError(f"object '{self.name}': keypoints must be finite (9, 3), got {kp.shape}")
        kp.setflags(write=False)
        object.__setattr__(self, "keypoints", kp)
        try:
            sym = tuple(parse_symmetry(np.asarray(m).ravel()) for m in self.symmetries)
        except SymmetryError as exc:
            raise CatalogueError(f"object '{self.name}': {exc}") from exc
        for m in sym:
            m.setflags(write=False)
        object.__setattr__(self, "symmetries", sym)

    @property
    def bbox_min(self) -> np.ndarray:
        """(3,) minimum corner of the 3D bounding box, metres."""
        return self.keypoints[Keypoint.CORNER_XMIN_YMIN_ZMIN].copy()

    @property
    def bbox_size(self) -> np.ndarray:
        """(3,) size of the 3D bounding box, metres."""
        return self.keypoints[Keypoint.CORNER_XMAX_YMAX_ZMAX] - self.keypoints[Keypoint.CORNER_XMIN_YMIN_ZMIN]

    def model_points(self) -> np.ndarray:
        """Points for ADD/ADD-S: (N, 3) mesh vertices in metres, or the 9 keypoints without a mesh."""
        if self.mesh_path is None:
            return self.keypoints.copy()
        return load_mesh_points(self.mesh_path, self.mesh_units)


class Catalogue:
    """Ordered, immutable collection of ``ObjectSpec``; the order is the network's class order."""

    def __init__(self, objects: Iterable[ObjectSpec]) -> None:
        self._objects = tuple(objects)
        for field in ("name", "id"):
            values = [getattr(o, field) for o in self._objects]
            dup = sorted({v for v in values if values.count(v) > 1}, key=str)
            if dup:
                raise CatalogueError(f"duplicate object {field}(s): {dup}")

    @property
    def names(self) -> list[str]:
        """Class names in class-index order."""
        return [o.name for o in self._objects]

    def by_name(self, name: str) -> ObjectSpec:
        """Return the object called ``name``; ``KeyError`` listing the known names otherwise."""
        return self._objects[self.index_of(name)]

    def by_id(self, obj_id: int) -> ObjectSpec:
        """Return the object with id ``obj_id``; ``KeyError`` otherwise."""
        for obj in self._objects:
            if obj.id == obj_id:
                return obj
        raise KeyError(f"unknown object id {obj_id}; known ids: {[o.id for o in self._objects]}")

    def index_of(self, name: str) -> int:
        """Class index of ``name`` (its position in the catalogue)."""
        for i, obj in enumerate(self._objects):
            if obj.name == name:
                return i
        raise KeyError(f"unknown object class '{name}'; known classes: {self.names}")

    def select(self, names: Sequence[str]) -> Catalogue:
        """A new catalogue with only ``names``, in that order (e.g. a model bundle's classes)."""
        return Catalogue(self.by_name(n) for n in names)

    def keypoints_3d(self) -> np.ndarray:
        """(C, 9, 3) float64 keypoints of all classes, metres."""
        return np.stack([o.keypoints for o in self._objects]) if self._objects else np.zeros((0, 9, 3))

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[ObjectSpec]:
        return iter(self._objects)

    def __getitem__(self, index: int) -> ObjectSpec:
        return self._objects[index]

    def __repr__(self) -> str:
        return f"Catalogue({self.names})"


@functools.lru_cache(maxsize=64)
def _load_vertices(path: str, mtime_ns: int) -> np.ndarray:
    import trimesh  # noqa: PLC0415  (lazy: only needed when meshes are used)

    loaded = trimesh.load(path, process=False)
    if isinstance(loaded, trimesh.Scene):
        loaded = loaded.to_geometry()
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    vertices.setflags(write=False)
    return vertices


def load_mesh_points(path: str | Path, units: str = "mm") -> np.ndarray:
    """Load the vertices of a PLY/OBJ mesh, in metres.

    Args:
        path: mesh file.
        units: length unit of the file, a key of ``MESH_UNITS`` (BOP meshes: "mm").

    Returns:
        (N, 3) float64 vertices, metres (a fresh array; loads are cached per file).
    """
    if units not in MESH_UNITS:
        raise CatalogueError(f"mesh units must be one of {sorted(MESH_UNITS)}, got {units!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    vertices = _load_vertices(str(path.resolve()), path.stat().st_mtime_ns)
    if vertices.ndim != 2 or vertices.shape[0] == 0 or vertices.shape[1] != 3:
        raise CatalogueError(f"mesh {path} has no 3D vertices")
    return vertices * MESH_UNITS[units]


def mesh_diameter(points: np.ndarray) -> float:
    """Largest distance between two of the (N, 3) points (via their convex hull), same unit."""
    from scipy.spatial import ConvexHull  # noqa: PLC0415  (lazy: rarely needed)

    pts = np.asarray(points, dtype=np.float64)
    try:
        pts = pts[ConvexHull(pts).vertices]
    except Exception:  # flat or tiny point sets (no hull): use them all
        pts = np.unique(pts, axis=0)
    diff = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt(np.max(np.einsum("ijk,ijk->ij", diff, diff))))


def _fail(entry: str, field: str, problem: str) -> CatalogueError:
    return CatalogueError(f"object catalogue entry '{entry}', field '{field}': {problem}")


def _vector3(raw: dict[str, Any], entry: str, field: str, positive: bool) -> np.ndarray | None:
    if field not in raw:
        return None
    value = raw[field]
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
        raise _fail(entry, field, f"must be a list of 3 finite numbers (metres), got {value!r}")
    arr = np.asarray(value, dtype=np.float64)
    if positive and np.any(arr <= 0):
        raise _fail(entry, field, f"sizes must be > 0 metres, got {value!r}")
    return arr


def _check_scalars(raw: dict[str, Any], entry: str) -> None:
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise _fail(entry, unknown[0], f"unknown field; allowed fields: {sorted(_ENTRY_KEYS)}")
    for field in ("name", "id", "symmetric", "color"):
        if field not in raw:
            raise _fail(entry, field, "missing required field")
    if not isinstance(raw["name"], str) or not _NAME_RE.match(raw["name"]):
        raise _fail(entry, "name", f"must match {_NAME_RE.pattern}, got {raw['name']!r}")
    if not isinstance(raw["id"], int) or isinstance(raw["id"], bool) or raw["id"] < 0:
        raise _fail(entry, "id", f"must be an integer >= 0, got {raw['id']!r}")
    if not isinstance(raw["symmetric"], bool):
        raise _fail(entry, "symmetric", f"must be true or false, got {raw['symmetric']!r}")
    color = raw["color"]
    ok = isinstance(color, (list, tuple)) and len(color) == 3
    if not ok or not all(
        isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 1 for c in color
    ):
        raise _fail(entry, "color", f"must be [r, g, b] with values in 0..1, got {color!r}")
    diameter = raw.get("diameter")
    if diameter is not None and not (
        isinstance(diameter, (int, float)) and not isinstance(diameter, bool) and np.isfinite(diameter)
    ):
        raise _fail(entry, "diameter", f"must be a number of metres, got {diameter!r}")
    if diameter is not None and diameter <= 0:
        raise _fail(entry, "diameter", f"must be > 0 metres, got {diameter!r}")


def _resolve_box(
    raw: dict[str, Any], entry: str, mesh_dir: Path | None, units: str
) -> tuple[np.ndarray, np.ndarray, Path | None, np.ndarray | None]:
    """Bounding box (min, max) in metres, the mesh path (when the file exists) and its vertices."""
    lo = _vector3(raw, entry, "bbox_min", positive=False)
    size = _vector3(raw, entry, "bbox_size", positive=True)
    if (lo is None) != (size is None):
        raise _fail(entry, "bbox_size" if size is None else "bbox_min", "bbox_min and bbox_size go together")
    mesh_path = None
    if raw.get("mesh") is not None:
        if not isinstance(raw["mesh"], str) or not raw["mesh"]:
            raise _fail(entry, "mesh", f"must be a file name, got {raw['mesh']!r}")
        candidate = Path(raw["mesh"]).expanduser()
        if not candidate.is_absolute() and mesh_dir is not None:
            candidate = mesh_dir / candidate
        mesh_path = candidate if candidate.is_file() else None
        if mesh_path is None and lo is None:
            raise _fail(entry, "mesh", f"mesh file {candidate} not found and no cuboid (bbox_min/bbox_size)")
        if mesh_path is None:
            _LOG.info("object '%s': mesh %s not found, using the cuboid from the catalogue", entry, candidate)
    elif lo is None:
        raise _fail(entry, "mesh", "give a mesh file or a cuboid (bbox_min and bbox_size)")
    if mesh_path is None:
        return lo, lo + size, None, None
    vertices = load_mesh_points(mesh_path, units)
    mesh_lo, mesh_hi = vertices.min(axis=0), vertices.max(axis=0)
    if lo is not None:
        gap = max(np.max(np.abs(mesh_lo - lo)), np.max(np.abs(mesh_hi - (lo + size))))
        if gap > BBOX_TOLERANCE_M:
            raise _fail(
                entry,
                "mesh",
                f"mesh bounding box differs from bbox_min/bbox_size by {gap:.4f} m (mesh_units?)",
            )
    return mesh_lo, mesh_hi, mesh_path, vertices


def _parse_entry(raw: Any, index: int, mesh_dir: Path | None, units: str) -> ObjectSpec:
    if not isinstance(raw, dict):
        raise CatalogueError(f"object catalogue entry #{index}: must be a mapping, got {raw!r}")
    entry = str(raw.get("name", f"#{index}"))
    _check_scalars(raw, entry)
    lo, hi, mesh_path, vertices = _resolve_box(raw, entry, mesh_dir, units)
    diameter = raw.get("diameter")
    if diameter is None and vertices is not None:
        diameter = mesh_diameter(vertices)
    elif diameter is None:
        diameter = float(np.linalg.norm(hi - lo))
        _LOG.warning("object '%s': no diameter given, using the cuboid diagonal %.4f m", entry, diameter)
    return ObjectSpec(
        name=raw["name"],
        id=raw["id"],
        keypoints=cuboid_keypoints(lo, hi),
        diameter=float(diameter),
        symmetric=raw["symmetric"],
        color=tuple(float(c) for c in raw["color"]),
        mesh_path=mesh_path,
        mesh_units=units,
        symmetries=_symmetries(raw, entry),
    )


def _symmetries(raw: dict[str, Any], entry: str) -> tuple[np.ndarray, ...]:
    """The ``symmetries`` field: a list of row-major 4x4 transforms, translation in metres."""
    value = raw.get("symmetries", [])
    if not isinstance(value, list) or not all(isinstance(m, list) for m in value):
        raise _fail(entry, "symmetries", f"must be a list of 16-number lists, got {value!r}")
    if value and not raw["symmetric"]:
        raise _fail(entry, "symmetries", "given for an object with symmetric: false")
    try:
        return tuple(parse_symmetry(m) for m in value)
    except (SymmetryError, TypeError, ValueError) as exc:
        raise _fail(entry, "symmetries", str(exc)) from exc


def _mesh_dir(data: dict[str, Any], yaml_dir: Path, override: str | Path | None) -> Path | None:
    chosen = override if override is not None else os.environ.get(MESH_DIR_ENV) or data.get("mesh_dir")
    if chosen is None:
        return None
    if not isinstance(chosen, (str, Path)):
        raise CatalogueError(f"object catalogue field 'mesh_dir': must be a path, got {chosen!r}")
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else (yaml_dir / path)


def load_catalogue(path: str | Path, mesh_dir: str | Path | None = None) -> Catalogue:
    """Read an object catalogue YAML file.

    Args:
        path: the YAML file (``config/objects.yaml`` format).
        mesh_dir: folder of the meshes; overrides ``$HRPOSE_MESH_DIR``, which overrides
            the file's ``mesh_dir``. Relative paths in the file resolve against its folder.

    Returns:
        The ``Catalogue``, in file order. Raises ``CatalogueError`` naming the bad entry.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"cannot read object catalogue {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise CatalogueError(f"object catalogue {path}: needs a top-level 'objects' list")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise CatalogueError(f"object catalogue {path}: unknown top-level field(s) {unknown}")
    units = data.get("mesh_units", "mm")
    if units not in MESH_UNITS:
        raise CatalogueError(
            f"object catalogue field 'mesh_units': one of {sorted(MESH_UNITS)}, got {units!r}"
        )
    folder = _mesh_dir(data, path.parent, mesh_dir)
    return Catalogue(_parse_entry(raw, i, folder, units) for i, raw in enumerate(data["objects"]))

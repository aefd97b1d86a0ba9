"""Project-made fixtures for the data-engine tests: procedural meshes and catalogues.

Small images (160x120 with the LINEMOD camera scaled by 1/4) keep llvmpipe fast.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import trimesh
import yaml

from hrpose_ros.data import synthetic
from hrpose_ros.data.synthetic import SynthConfig
from hrpose_ros.geometry.camera import scale_intrinsics
from hrpose_ros.geometry.keypoints import cuboid_keypoints
from hrpose_ros.geometry.objects import Catalogue, ObjectSpec, load_catalogue

REPO = Path(__file__).resolve().parents[1]
LMO_DIR = REPO.parent / "shared" / "data" / "lmo_models"
LINEMOD_K = np.asarray(synthetic.LINEMOD_K, dtype=np.float64).reshape(3, 3)
SMALL_SIZE = (160, 120)
K_SMALL = scale_intrinsics(LINEMOD_K, 0.25, 0.25)


def colored_box(extents=(0.08, 0.06, 0.04), seed: int = 0) -> trimesh.Trimesh:
    """A subdivided box with random vertex colours, centred on the origin, metres."""
    box = trimesh.creation.box(extents=extents).subdivide().subdivide()
    rng = np.random.default_rng(seed)
    colors = rng.integers(40, 255, (len(box.vertices), 4)).astype(np.uint8)
    colors[:, 3] = 255
    box.visual.vertex_colors = colors
    return box


def colored_icosphere(radius: float = 0.04, seed: int = 1) -> trimesh.Trimesh:
    """An icosphere with random vertex colours, metres."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    rng = np.random.default_rng(seed)
    colors = rng.integers(40, 255, (len(sphere.vertices), 4)).astype(np.uint8)
    colors[:, 3] = 255
    sphere.visual.vertex_colors = colors
    return sphere


def mesh_spec(
    path: Path, mesh: trimesh.Trimesh, name: str, obj_id: int, symmetric: bool = False
) -> ObjectSpec:
    """Write ``mesh`` as PLY (metres) and describe it as a catalogue object."""
    mesh.export(path)
    lo, hi = mesh.bounds
    return ObjectSpec(
        name=name,
        id=obj_id,
        keypoints=cuboid_keypoints(lo, hi),
        diameter=float(np.linalg.norm(hi - lo)),
        symmetric=symmetric,
        color=(0.9, 0.2, 0.2),
        mesh_path=path,
        mesh_units="m",
    )


def mesh_catalogue(folder: Path) -> Catalogue:
    """Two mesh objects (a box, id 3; an off-centre sphere, id 7) written under ``folder``."""
    sphere = colored_icosphere()
    sphere.apply_translation((0.01, -0.005, 0.0))
    return Catalogue(
        [
            mesh_spec(folder / "box.ply", colored_box(), "box", 3),
            mesh_spec(folder / "ball.ply", sphere, "ball", 7, symmetric=True),
        ]
    )


def cuboid_catalogue() -> Catalogue:
    """Two mesh-less cuboid objects (ids 1 and 2), for loader tests."""
    return Catalogue(
        [
            ObjectSpec(
                "blockA",
                1,
                cuboid_keypoints((-0.05, -0.04, -0.03), (0.05, 0.04, 0.03)),
                0.14,
                False,
                (1.0, 0.0, 0.0),
                None,
                "m",
            ),
            ObjectSpec(
                "blockB",
                2,
                cuboid_keypoints((-0.03, -0.06, -0.02), (0.03, 0.06, 0.04)),
                0.15,
                True,
                (0.0, 1.0, 0.0),
                None,
                "m",
            ),
        ]
    )


def rotation(rng: np.random.Generator) -> np.ndarray:
    """A random proper rotation (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


BOX_ENTRY = {
    "name": "box",
    "id": 1,
    "bbox_min": [-0.05, -0.035, -0.025],
    "bbox_size": [0.1, 0.07, 0.05],
    "diameter": float(np.linalg.norm([0.1, 0.07, 0.05])),
    "symmetric": False,
    "color": [0.9, 0.5, 0.1],
}
"""objects.yaml entry of a 10 x 7 x 5 cm cuboid (rendered as a coloured box)."""


def write_objects_yaml(path: Path, entries: list[dict]) -> Path:
    """Write an ``objects.yaml`` with these entries; return its path."""
    path.write_text(yaml.safe_dump({"objects": entries}))
    return path


def render_config(width: int, height: int, **overrides) -> SynthConfig:
    """Plain rendered scenes (no distractors, PNG) with the LINEMOD camera scaled to width x height."""
    K = scale_intrinsics(LINEMOD_K, width / 640, height / 480)
    base = SynthConfig(
        width=width,
        height=height,
        K=tuple(K.reshape(-1).tolist()),
        mode="render",
        distractors_per_image=(0, 0),
        image_ext="png",
        other_objects_as_distractors=False,
    )
    return replace(base, **overrides)


def render_box_scene(
    root: Path, num_images: int = 8, width: int = 128, height: int = 96
) -> tuple[Path, Path]:
    """(catalogue YAML, BOP split folder) of ``num_images`` rendered images of one 10x7x5 cm
    box (``BOX_ENTRY``), near the camera, without blur, noise or jitter: training-test data."""
    objects = write_objects_yaml(root / "objects.yaml", [BOX_ENTRY])
    cfg = render_config(
        width,
        height,
        objects_per_image=(1, 1),
        distance_m=(0.22, 0.26),
        margin_fraction=0.3,
        blur_prob=0.0,
        noise_prob=0.0,
        jitter=0.0,
    )
    catalogue = load_catalogue(objects)
    split = synthetic.generate_dataset(root / "data", catalogue, cfg, num_images, seed=3, progress=False)
    return objects, split

"""Synthetic training data: rendered and cut-and-paste images in the BOP layout.

The models are judged on real photographs the project does not have, so the
generator randomises what a real camera would vary: object pose (any rotation, or
standing on a table: ``data.pose_priors``; 0.35-1.5 m, anywhere in the frame), lighting
direction/intensity/colour, object colour, backgrounds (procedural or the user's photos),
distractors, occlusion, blur and noise.
Two image kinds, as in the paper:

- ``render``: all objects in one OpenGL scene, occlusion from the depth test.
- ``cut_paste``: each object rendered alone under its own light, then pasted on the
  background in random order with feathered edges (occlusion by paste order). Each
  object's pixels stay where its pose projects them, so the annotation is exact.

Each image is drawn from ``numpy.random.default_rng([seed, index])``, so the output is
the same for any number of worker processes, and for any number of machines: with
``--shard I/N`` a machine renders its block of whole scenes, and ``--merge`` joins the
shard folders into the dataset one machine would have written (``data.shards``).
CLI: ``hrpose-synth``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from hrpose_ros.data import bop, shards
from hrpose_ros.data.augment import add_noise, color_jitter, gaussian_blur
from hrpose_ros.data.backgrounds import BackgroundSource, list_images
from hrpose_ros.data.pose_priors import POSE_PRIORS, UP_AXES, PosePrior, random_rotation
from hrpose_ros.data.render import MAX_POINT_LIGHTS
from hrpose_ros.geometry.camera import check_intrinsics, intrinsics_matrix, scale_intrinsics
from hrpose_ros.geometry.keypoints import Keypoint
from hrpose_ros.geometry.objects import MESH_UNITS, Catalogue, ObjectSpec, load_catalogue

__all__ = [
    "LINEMOD_K",
    "MODES",
    "PosePrior",
    "SceneGenerator",
    "SynthConfig",
    "SynthError",
    "SyntheticSample",
    "generate_dataset",
    "main",
    "models_info_entry",
    "random_rotation",
    "write_sample",
]

_LOG = logging.getLogger(__name__)

LINEMOD_K = (572.4114, 0.0, 325.2611, 0.0, 573.57043, 242.04899, 0.0, 0.0, 1.0)
"""The LINEMOD camera (640x480), row-major 3x3."""

MODES = ("render", "cut_paste", "mixed")
_DEFAULT_CATALOGUE = Path(__file__).resolve().parents[2] / "config" / "objects.yaml"


class SynthError(ValueError):
    """Bad generator configuration (names the option)."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes the generated images (one source of defaults for the CLI).

    Attributes:
        width, height: image size, pixels.
        K: row-major 3x3 intrinsics (default: the LINEMOD camera).
        mode: 'render', 'cut_paste' or 'mixed' (half each).
        objects_per_image: (min, max) annotated objects per image.
        distractors_per_image: (min, max) unannotated distractors per image.
        distance_m: (min, max) camera distance of object centres, metres.
        pose_prior: how object rotations are drawn (``data.pose_priors``); distractors
            always take any rotation.
        light_intensity, ambient: (min, max) of the random light's strength and of the
            ambient term; a held-out test set shifts them to see lighting the training
            never had.
        point_lights, point_intensity: (min, max) lamps near the scene per light draw and
            their strength (``render.random_light``); (0, 0) = none.
        hemisphere_ambient: 0..1; above 0, the ambient's dark side (faces turned from a
            random sky direction) keeps 1 - U(0, this) of it.
        margin_fraction: object centres stay this fraction of the size inside the image.
        max_faces: decimate meshes above this face count (speed; None keeps all).
        color_gain: max relative per-channel change of object albedo.
        blur_prob, blur_sigma_max: chance and max std (px) of a whole-image blur.
        noise_prob, noise_std_max: chance and max std (0..255 levels) of sensor noise.
        jitter: max relative brightness/contrast/saturation change of the final image.
        background_dir: folder of photos to use as backgrounds (None: procedural only).
        background_image_prob: chance of a photo when a folder is given.
        other_objects_as_distractors: unselected catalogue objects appear unannotated.
        images_per_scene: BOP scene folder size.
        image_ext: 'jpg' or 'png'.
        write_depth: also write depth/ (uint16, depth_scale mm per unit).
        depth_scale: mm per depth unit.
    """

    width: int = 640
    height: int = 480
    K: tuple[float, ...] = LINEMOD_K
    mode: str = "mixed"
    objects_per_image: tuple[int, int] = (1, 4)
    distractors_per_image: tuple[int, int] = (0, 4)
    distance_m: tuple[float, float] = (0.35, 1.5)
    pose_prior: PosePrior = field(default_factory=PosePrior)
    light_intensity: tuple[float, float] = (0.5, 1.4)
    ambient: tuple[float, float] = (0.2, 0.55)
    point_lights: tuple[int, int] = (0, 0)
    point_intensity: tuple[float, float] = (0.4, 1.6)
    hemisphere_ambient: float = 0.0
    margin_fraction: float = 0.05
    max_faces: int | None = 6000
    color_gain: float = 0.2
    blur_prob: float = 0.5
    blur_sigma_max: float = 1.2
    noise_prob: float = 0.5
    noise_std_max: float = 5.0
    jitter: float = 0.15
    background_dir: str | None = None
    background_image_prob: float = 0.5
    other_objects_as_distractors: bool = True
    images_per_scene: int = 1000
    image_ext: str = "jpg"
    write_depth: bool = False
    depth_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SynthError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.width < 8 or self.height < 8:
            raise SynthError(f"image size must be at least 8x8, got {self.width}x{self.height}")
        for name in ("objects_per_image", "distractors_per_image"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise SynthError(f"{name} must be (min, max) with 0 <= min <= max, got {(lo, hi)}")
        if self.objects_per_image[1] < 1:
            raise SynthError("objects_per_image max must be >= 1")
        lo, hi = self.distance_m
        if not 0 < lo <= hi:
            raise SynthError(f"distance_m must satisfy 0 < min <= max, got {self.distance_m}")
        for name in ("light_intensity", "ambient", "point_intensity"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise SynthError(f"{name} must be (min, max) with 0 <= min <= max, got {(lo, hi)}")
        lo, hi = self.point_lights
        if not 0 <= lo <= hi <= MAX_POINT_LIGHTS:
            raise SynthError(
                f"point_lights must be (min, max) with 0 <= min <= max <= {MAX_POINT_LIGHTS}, got {(lo, hi)}"
            )
        if not 0 <= self.hemisphere_ambient <= 1:
            raise SynthError(f"hemisphere_ambient must lie in [0, 1], got {self.hemisphere_ambient}")
        if self.images_per_scene < 1:
            raise SynthError(f"images_per_scene must be >= 1, got {self.images_per_scene}")
        check_intrinsics(self.camera_matrix())

    def camera_matrix(self) -> np.ndarray:
        """(3, 3) float64 intrinsics."""
        return np.asarray(self.K, dtype=np.float64).reshape(3, 3)


@dataclass
class SyntheticSample:
    """One generated image and its annotation (metres, RGB).

    Attributes:
        rgb: (H, W, 3) uint8; K: (3, 3); instances: annotated objects (BOP obj_id, R, t);
        masks_visib / masks_all: per instance (H, W) bool; depth: (H, W) float32 metres or None;
        mode: 'render' or 'cut_paste'; extras: ``full_silhouettes``, per instance the
        renderer's ``full_silhouette`` (None for objects inside the image).
    """

    rgb: np.ndarray
    K: np.ndarray
    instances: list[bop.GtInstance]
    masks_visib: list[np.ndarray]
    masks_all: list[np.ndarray]
    depth: np.ndarray | None
    mode: str
    extras: dict = field(default_factory=dict)


def _distractor_meshes(rng: np.random.Generator, count: int = 12) -> list:
    """Procedural primitives with random sizes (2-15 cm) and striped/noisy vertex colours."""
    import trimesh  # noqa: PLC0415

    from hrpose_ros.data.render import mesh_from_trimesh  # noqa: PLC0415

    makers = [
        lambda s: trimesh.creation.box(extents=s * rng.uniform(0.3, 1.0, 3)),
        lambda s: trimesh.creation.icosphere(subdivisions=2, radius=s / 2),
        lambda s: trimesh.creation.cylinder(radius=s / 3, height=s, sections=24),
        lambda s: trimesh.creation.capsule(height=s / 2, radius=s / 4, count=[12, 12]),
        lambda s: trimesh.creation.cone(radius=s / 3, height=s, sections=24),
        lambda s: trimesh.creation.torus(
            major_radius=s / 2, minor_radius=s / 6, major_sections=24, minor_sections=12
        ),
    ]
    meshes = []
    for i in range(count):
        m = makers[i % len(makers)](rng.uniform(0.02, 0.15))
        if i % len(makers) == 0:  # boxes: subdivide so per-vertex colours can vary
            m = m.subdivide().subdivide()
        v = m.vertices / (np.ptp(m.vertices, axis=0).max() + 1e-9)
        a, b = rng.random(3), rng.random(3)
        phase = np.sin(v @ rng.normal(size=3) * rng.uniform(3, 20))[:, None]
        col = np.clip(
            a * (0.5 + 0.5 * phase) + b * (0.5 - 0.5 * phase) + rng.normal(0, 0.05, (len(v), 3)), 0, 1
        )
        m.visual.vertex_colors = np.hstack([col * 255, np.full((len(v), 1), 255)]).astype(np.uint8)
        meshes.append(mesh_from_trimesh(m))
    return meshes


def _mesh_scale(spec: ObjectSpec) -> float:
    return MESH_UNITS[spec.mesh_units]


def _object_mesh(spec: ObjectSpec, max_faces: int | None):
    """Render mesh of a catalogue object: its mesh file, or its cuboid in its colour."""
    import trimesh  # noqa: PLC0415

    from hrpose_ros.data.render import load_render_mesh, mesh_from_trimesh  # noqa: PLC0415

    if spec.mesh_path is not None:
        return load_render_mesh(spec.mesh_path, scale=_mesh_scale(spec), max_faces=max_faces)
    box = trimesh.creation.box(extents=spec.bbox_size)
    box.apply_translation(spec.bbox_min + spec.bbox_size / 2)
    return mesh_from_trimesh(box, default_color=spec.color)


def models_info_entry(spec: ObjectSpec, source: dict | None = None) -> dict:
    """BOP ``models_info.json`` entry (millimetres) of a catalogue object; symmetry
    fields are copied from ``source`` (the mesh folder's own entry) when given."""
    lo, size = spec.bbox_min * bop.MM_PER_M, spec.bbox_size * bop.MM_PER_M
    entry = {"diameter": spec.diameter * bop.MM_PER_M}
    entry.update({f"min_{a}": float(v) for a, v in zip("xyz", lo, strict=True)})
    entry.update({f"size_{a}": float(v) for a, v in zip("xyz", size, strict=True)})
    for key in ("symmetries_discrete", "symmetries_continuous"):
        if source and key in source:
            entry[key] = source[key]
    return entry


class SceneGenerator:
    """Owns one renderer and the uploaded meshes; :meth:`sample` makes one image.

    Create one per process (the GL context is per process).
    """

    def __init__(
        self, catalogue: Catalogue, config: SynthConfig, targets: Sequence[str] | None = None, renderer=None
    ):
        """Args:
        catalogue: objects (meshes in their file units, keypoints in metres).
        config: generator settings.
        targets: names of the annotated classes (default: all); with
            ``config.other_objects_as_distractors`` the rest appear unannotated.
        renderer: an existing :class:`~hrpose_ros.data.render.Renderer` to reuse.
        """
        from hrpose_ros.data.render import Renderer  # noqa: PLC0415

        self.config = config
        self.K = config.camera_matrix()
        names = list(targets) if targets else catalogue.names
        self.targets = [catalogue.by_name(n) for n in names]
        self.others = (
            [s for s in catalogue if s.name not in names] if config.other_objects_as_distractors else []
        )
        self.renderer = renderer or Renderer(config.width, config.height)
        for spec in [*self.targets, *self.others]:
            if not self.renderer.has_mesh(spec.name):
                self.renderer.add_mesh(spec.name, _object_mesh(spec, config.max_faces))
        self.distractor_keys = [s.name for s in self.others]
        for i, mesh in enumerate(_distractor_meshes(np.random.default_rng(12345))):
            self.renderer.add_mesh(f"_distractor{i}", mesh)
            self.distractor_keys.append(f"_distractor{i}")
        images = list_images(config.background_dir) if config.background_dir else []
        self.backgrounds = BackgroundSource(images, config.background_image_prob)

    def _place(
        self, rng: np.random.Generator, center_obj: np.ndarray, table: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Random pose with the object's box centre at a random pixel and distance; its
        rotation from the pose prior in the image's ``table`` frame (None: any rotation)."""
        cfg = self.config
        m = cfg.margin_fraction
        u = rng.uniform(m * cfg.width, (1 - m) * cfg.width)
        v = rng.uniform(m * cfg.height, (1 - m) * cfg.height)
        z = rng.uniform(*cfg.distance_m)
        R = cfg.pose_prior.draw(rng, table)
        center_cam = z * np.linalg.solve(self.K, np.array([u, v, 1.0]))
        return R, center_cam - R @ center_obj

    def _items(self, rng: np.random.Generator):
        from hrpose_ros.data.render import RenderItem  # noqa: PLC0415

        cfg = self.config
        table = cfg.pose_prior.draw_scene(rng)  # one camera over one table per image
        n_obj = int(rng.integers(cfg.objects_per_image[0], cfg.objects_per_image[1] + 1))
        n_dis = int(rng.integers(cfg.distractors_per_image[0], cfg.distractors_per_image[1] + 1))
        g = cfg.color_gain
        targets, distractors = [], []
        for idx in rng.integers(len(self.targets), size=n_obj):
            spec = self.targets[int(idx)]
            R, t = self._place(rng, spec.keypoints[Keypoint.CENTROID], table)
            gain = tuple(rng.uniform(1 - g, 1 + g, 3).tolist())
            targets.append((spec, RenderItem(spec.name, R, t, gain)))
        for idx in rng.integers(len(self.distractor_keys), size=n_dis):
            R, t = self._place(rng, np.zeros(3))
            gain = tuple(rng.uniform(1 - 2 * g, 1 + 2 * g, 3).tolist())
            distractors.append(RenderItem(self.distractor_keys[int(idx)], R, t, gain))
        return targets, distractors

    def sample(self, rng: np.random.Generator) -> SyntheticSample:
        """Generate one image with its annotation from ``rng``."""
        from hrpose_ros.data.render import random_light  # noqa: PLC0415

        cfg = self.config
        mode = cfg.mode if cfg.mode != "mixed" else ("render" if rng.random() < 0.5 else "cut_paste")
        background = self.backgrounds(rng, cfg.width, cfg.height)
        targets, distractors = self._items(rng)
        items = [it for _, it in targets] + distractors
        light = partial(
            random_light,
            intensity=cfg.light_intensity,
            ambient=cfg.ambient,
            point_lights=cfg.point_lights,
            point_intensity=cfg.point_intensity,
            hemisphere=cfg.hemisphere_ambient,
        )
        order = rng.permutation(len(items))
        if mode == "render":
            out = self.renderer.render(items, self.K, light(rng), with_depth=cfg.write_depth)
            rgb = np.where((out.instance > 0)[..., None], out.rgb, background)
            masks_visib = [out.instance == i + 1 for i in range(len(targets))]
            masks_all = self._masks_all(items, masks_visib)
            depth = out.depth if cfg.write_depth else None
        else:
            rgb, depth = background.copy(), np.zeros((cfg.height, cfg.width), np.float32)
            masks_all = [np.zeros((cfg.height, cfg.width), bool) for _ in items]
            for i in order:  # paste in random order: later layers occlude earlier ones
                crop = self.renderer.render_crop(items[i], self.K, light(rng), with_depth=cfg.write_depth)
                if crop is None:
                    continue
                (x0, y0, x1, y1), layer = crop
                mask = layer.instance > 0
                masks_all[i][y0:y1, x0:x1] = mask
                # feather the edge inward only (outside the mask the layer is empty)
                soft = gaussian_blur(mask.astype(np.float32), rng.uniform(0.3, 1.2))
                alpha = np.minimum(soft, mask)[..., None]
                under = rgb[y0:y1, x0:x1]
                rgb[y0:y1, x0:x1] = (alpha * layer.rgb + (1 - alpha) * under).astype(np.uint8)
                if cfg.write_depth:
                    depth[y0:y1, x0:x1] = np.where(mask, layer.depth, depth[y0:y1, x0:x1])
            masks_visib = []
            for rank, i in enumerate(order):
                covered = np.zeros_like(masks_all[i])
                for j in order[rank + 1 :]:
                    covered |= masks_all[j]
                masks_visib.append((int(i), masks_all[i] & ~covered))
            masks_visib = [m for i, m in sorted(masks_visib) if i < len(targets)]
            masks_all = masks_all[: len(targets)]
            depth = depth if cfg.write_depth else None
        rgb = self._finish(rng, np.ascontiguousarray(rgb))
        instances = [bop.GtInstance(spec.id, it.R, it.t) for spec, it in targets]
        full = [self.renderer.full_silhouette(it, self.K) for _, it in targets]
        return SyntheticSample(
            rgb, self.K.copy(), instances, masks_visib, masks_all, depth, mode, {"full_silhouettes": full}
        )

    def _masks_all(self, items: Sequence, masks_visib: list[np.ndarray]) -> list[np.ndarray]:
        """Unoccluded silhouettes of the first ``len(masks_visib)`` items. An item whose
        projected 3D box meets no other item's box cannot be occluded, so its visible
        mask is already complete; only the others are rendered again alone."""
        boxes = [self.renderer.projected_box(it, self.K) for it in items]

        def overlaps(i: int) -> bool:
            a = boxes[i]
            return a is not None and any(
                b is not None and j != i and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                for j, b in enumerate(boxes)
            )

        need = [i for i in range(len(masks_visib)) if overlaps(i)]
        alone = dict(
            zip(need, self.renderer.render_masks_alone([items[i] for i in need], self.K), strict=True)
        )
        return [alone.get(i, m) for i, m in enumerate(masks_visib)]

    def _finish(self, rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
        """Camera effects on the whole image: colour jitter, blur, sensor noise."""
        cfg = self.config
        if cfg.jitter > 0:
            rgb = color_jitter(
                rgb, rng, brightness=cfg.jitter, contrast=cfg.jitter, saturation=cfg.jitter, hue_deg=0.0
            )
        if cfg.blur_sigma_max > 0 and rng.random() < cfg.blur_prob:
            rgb = gaussian_blur(rgb, rng.uniform(0.2, cfg.blur_sigma_max))
        if cfg.noise_std_max > 0 and rng.random() < cfg.noise_prob:
            rgb = add_noise(rgb, rng, rng.uniform(0.5, cfg.noise_std_max))
        return rgb


# ----------------------------------------------------------------------------- dataset

_WORKER: dict = {}


def _init_worker(state: dict) -> None:
    """Per-process set-up: one GL context and the uploaded meshes, reused for every image."""
    if state["single_thread_gl"]:
        os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe: one thread per worker process
    cv2.setNumThreads(1)
    _WORKER.update(
        generator=SceneGenerator(state["catalogue"], state["config"], state["targets"]),
        out_split=state["out_split"],
        seed=state["seed"],
        config=state["config"],
    )


def write_sample(out_split: str | Path, index: int, sample: SyntheticSample, config: SynthConfig) -> tuple:
    """Write image ``index`` of a split (scene = index // images_per_scene) and return its
    JSON entries ``(scene_id, im_id, camera, gt list, gt_info list)``."""
    scene_id, im_id = divmod(index, config.images_per_scene)
    scene_dir = Path(out_split) / f"{scene_id:06d}"
    bop.write_image_files(
        scene_dir,
        im_id,
        sample.rgb,
        sample.masks_visib,
        masks_all=sample.masks_all,
        depth=sample.depth if config.write_depth else None,
        depth_scale=config.depth_scale,
        image_ext=config.image_ext,
    )
    full = sample.extras.get("full_silhouettes") or [None] * len(sample.masks_all)
    infos = [
        bop.gt_info_entry(bop.gt_info_from_masks(a, v, f))
        for a, v, f in zip(sample.masks_all, sample.masks_visib, full, strict=True)
    ]
    return (
        scene_id,
        im_id,
        bop.camera_entry(sample.K, config.depth_scale),
        [bop.gt_entry(i) for i in sample.instances],
        infos,
    )


def _make_image(index: int) -> tuple:
    sample = _WORKER["generator"].sample(np.random.default_rng([_WORKER["seed"], index]))
    return write_sample(_WORKER["out_split"], index, sample, _WORKER["config"])


def _source_models_info(catalogue: Catalogue) -> dict[int, dict]:
    """The mesh folder's own models_info.json entries (for symmetry fields), if any."""
    found = {}
    for spec in catalogue:
        path = spec.mesh_path.parent / "models_info.json" if spec.mesh_path else None
        if path is not None and path.is_file():
            data = json.loads(path.read_text())
            if str(spec.id) in data:
                found[spec.id] = data[str(spec.id)]
    return found


def generate_dataset(
    out_dir: str | Path,
    catalogue: Catalogue,
    config: SynthConfig,
    num_images: int,
    *,
    seed: int = 0,
    workers: int = 1,
    targets: Sequence[str] | None = None,
    split: str = "train_synt",
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> Path:
    """Generate ``num_images`` images into ``out_dir/<split>/<scene>/`` (BOP layout) and
    ``out_dir/models/models_info.json``; returns the split folder.

    Image ``i`` depends only on (seed, i), so any ``workers`` count gives the same files.
    ``shard=(I, N)`` with N > 1 writes only the whole scenes of shard I of N, and the
    manifest ``shards.merge_shards`` checks (see ``data.shards``).
    """
    from tqdm import tqdm  # noqa: PLC0415

    if num_images < 1 or workers < 1:
        raise SynthError(f"num_images and workers must be >= 1, got {num_images}, {workers}")
    index, count = shard
    scenes = shards.shard_scenes(num_images, config.images_per_scene, index, count)
    indices = shards.shard_images(num_images, config.images_per_scene, index, count)
    out_dir = Path(out_dir)
    out_split = out_dir / split
    chosen = catalogue.select(targets) if targets else catalogue
    source = _source_models_info(chosen)
    bop.write_models_info(
        out_dir / "models" / "models_info.json",
        {s.id: models_info_entry(s, source.get(s.id)) for s in chosen},
    )
    camera: dict[int, dict[int, dict]] = {}
    gt: dict[int, dict[int, list]] = {}
    gt_info: dict[int, dict[int, list]] = {}
    state = {
        "catalogue": catalogue,
        "config": config,
        "targets": targets,
        "out_split": out_split,
        "seed": seed,
        "single_thread_gl": workers > 1,
    }
    bar = tqdm(total=len(indices), desc="hrpose-synth", unit="img", disable=not progress)
    if workers == 1:
        _init_worker(state)
        results = map(_make_image, indices)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(state,))
        results = pool.imap_unordered(_make_image, indices, chunksize=4)
    try:
        for scene_id, im_id, cam, gts, infos in results:
            camera.setdefault(scene_id, {})[im_id] = cam
            gt.setdefault(scene_id, {})[im_id] = gts
            gt_info.setdefault(scene_id, {})[im_id] = infos
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
        _WORKER.clear()
    for scene_id in sorted(camera):
        bop.write_scene_json(out_split / f"{scene_id:06d}", camera[scene_id], gt[scene_id], gt_info[scene_id])
    if count > 1:  # last: a shard folder without its manifest is unfinished
        dataset = {
            "num_images": num_images,
            "seed": seed,
            "targets": list(targets) if targets else None,
            "config": json.loads(json.dumps(dataclasses.asdict(config))),
        }
        shards.write_manifest(out_dir, dataset, split, shard, scenes)
    return out_split


# ----------------------------------------------------------------------------- CLI


def _camera_from_json(path: str) -> tuple[tuple[float, ...], int, int]:
    """BOP ``camera.json`` (fx, fy, cx, cy, width, height) -> K, width, height."""
    try:
        data = json.loads(Path(path).read_text())
        K = intrinsics_matrix(data["fx"], data["fy"], data["cx"], data["cy"])
        return tuple(K.reshape(-1).tolist()), int(data["width"]), int(data["height"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise SynthError(
            f"--camera {path}: need a BOP camera.json with fx, fy, cx, cy, width, height ({exc})"
        ) from exc


def _parser() -> argparse.ArgumentParser:
    d = SynthConfig()
    p = argparse.ArgumentParser(prog="hrpose-synth", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output dataset folder (BOP layout)")
    p.add_argument("--num-images", type=int, default=100, help="images to generate (default 100)")
    p.add_argument("--catalogue", default=str(_DEFAULT_CATALOGUE), help="object catalogue YAML")
    p.add_argument("--mesh-dir", default=None, help="override the catalogue's mesh folder")
    p.add_argument("--classes", nargs="+", default=None, help="annotated classes (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--mode", choices=MODES, default=d.mode, help=f"image kind (default {d.mode})")
    p.add_argument("--camera", default=None, help="BOP camera.json (default: the LINEMOD camera, 640x480)")
    p.add_argument("--width", type=int, default=None, help="image width (K scaled to match)")
    p.add_argument("--height", type=int, default=None, help="image height (K scaled to match)")
    p.add_argument("--backgrounds", default=None, help="folder of background photos (default: procedural)")
    p.add_argument(
        "--background-prob",
        type=float,
        default=d.background_image_prob,
        help=f"chance of a photo when --backgrounds is given (default {d.background_image_prob})",
    )
    p.add_argument(
        "--hemisphere-ambient",
        type=float,
        default=d.hemisphere_ambient,
        metavar="H",
        help="0..1: the ambient's dark side (faces turned from a random sky) keeps 1 - U(0, H) of it "
        f"(default {d.hemisphere_ambient}: uniform ambient)",
    )
    ranges = (
        ("--distance", float, d.distance_m, "object distance range, metres", ("MIN_M", "MAX_M")),
        ("--objects-per-image", int, d.objects_per_image, "annotated objects per image", ("MIN", "MAX")),
        ("--distractors", int, d.distractors_per_image, "unannotated distractors per image", ("MIN", "MAX")),
        ("--light-intensity", float, d.light_intensity, "strength range of the random light", ("MIN", "MAX")),
        ("--ambient", float, d.ambient, "ambient light range", ("MIN", "MAX")),
        ("--point-lights", int, d.point_lights, "lamps near the scene per light", ("MIN", "MAX")),
        ("--point-intensity", float, d.point_intensity, "strength range of each lamp", ("MIN", "MAX")),
    )
    for flag, kind, default, text, metavar in ranges:
        p.add_argument(
            flag, type=kind, nargs=2, default=default, metavar=metavar, help=f"{text} (default {default})"
        )
    prior = d.pose_prior
    p.add_argument(
        "--pose-prior",
        choices=POSE_PRIORS,
        default=prior.kind,
        help="object rotations: any (uniform), or upright on a table seen from above "
        f"(data/pose_priors.py; default {prior.kind})",
    )
    prior_options = (  # flag, nargs, default, metavar, help (floats, for --pose-prior upright)
        ("--elevation", 2, prior.elevation_deg, ("MIN_DEG", "MAX_DEG"), "camera elevation above the table"),
        ("--camera-roll", None, prior.camera_roll_deg, "DEG", "max camera roll about its optical axis"),
        ("--tilt", None, prior.tilt_deg, "DEG", "max lean of an object's up axis from the table normal"),
    )
    for flag, nargs, default, metavar, text in prior_options:
        p.add_argument(
            flag,
            type=float,
            nargs=nargs,
            default=default,
            metavar=metavar,
            help=f"upright: {text} (default {default})",
        )
    p.add_argument(
        "--up-axis",
        choices=UP_AXES,
        default=prior.up_axis,
        help=f"upright: the object-frame axis that points up when it stands (default {prior.up_axis})",
    )
    p.add_argument("--max-faces", type=int, default=d.max_faces, help="decimate meshes above this (0: never)")
    p.add_argument("--image-ext", choices=("jpg", "png"), default=d.image_ext)
    p.add_argument("--depth", action="store_true", help="also write depth/ images")
    p.add_argument("--split", default="train_synt", help="split folder name (default train_synt)")
    p.add_argument("--images-per-scene", type=int, default=d.images_per_scene)
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="render only shard I of N (0-based): a block of whole scenes; join them with --merge",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="SHARD_DIR",
        help="copy the scenes of these shard folders (all N shards of one dataset) into --out",
    )
    return p


def _merge(out: str, shard_dirs: list[str]) -> int:
    start = time.perf_counter()
    split = shards.merge_shards(out, shard_dirs)
    images = len(bop.read_dataset(split))
    print(
        f"shards      {len(shard_dirs)}\nimages      {images}\nseconds     "
        f"{time.perf_counter() - start:.1f}\noutput      {split}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hrpose-synth``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _merge(args.out, args.merge) if args.merge else _generate(args)
    except (shards.ShardError, SynthError) as exc:
        print(f"hrpose-synth: error: {exc}", file=sys.stderr)
        return 1


def _generate(args: argparse.Namespace) -> int:
    shard = shards.parse_shard(args.shard) if args.shard else (0, 1)
    try:
        prior = PosePrior(args.pose_prior, tuple(args.elevation), args.camera_roll, args.tilt, args.up_axis)
    except ValueError as exc:  # the prior module knows no SynthError; the CLI reports both alike
        raise SynthError(str(exc)) from exc
    config = SynthConfig(
        mode=args.mode,
        distance_m=tuple(args.distance),
        pose_prior=prior,
        objects_per_image=tuple(args.objects_per_image),
        distractors_per_image=tuple(args.distractors),
        light_intensity=tuple(args.light_intensity),
        ambient=tuple(args.ambient),
        point_lights=tuple(args.point_lights),
        point_intensity=tuple(args.point_intensity),
        hemisphere_ambient=args.hemisphere_ambient,
        max_faces=args.max_faces or None,
        background_dir=args.backgrounds,
        background_image_prob=args.background_prob,
        image_ext=args.image_ext,
        write_depth=args.depth,
        images_per_scene=args.images_per_scene,
    )
    if args.camera:
        K, w, h = _camera_from_json(args.camera)
        config = replace(config, K=K, width=w, height=h)
    if args.width or args.height:  # same field of view at another resolution: scale the intrinsics
        w, h = args.width or config.width, args.height or config.height
        K = np.asarray(config.K, dtype=np.float64).reshape(3, 3)
        K = scale_intrinsics(K, w / config.width, h / config.height)
        config = replace(config, K=tuple(K.reshape(-1).tolist()), width=w, height=h)
    catalogue = load_catalogue(args.catalogue, args.mesh_dir)
    start = time.perf_counter()
    split = generate_dataset(
        args.out,
        catalogue,
        config,
        args.num_images,
        seed=args.seed,
        workers=args.workers,
        targets=args.classes,
        split=args.split,
        shard=shard,
    )
    elapsed = time.perf_counter() - start
    made = len(shards.shard_images(args.num_images, config.images_per_scene, *shard))
    print(
        f"images      {made}{f' (shard {shard[0]}/{shard[1]} of {args.num_images})' if args.shard else ''}\n"
        f"workers     {args.workers}\nseconds     {elapsed:.1f}\n"
        f"images/s    {made / elapsed:.1f}\noutput      {split}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

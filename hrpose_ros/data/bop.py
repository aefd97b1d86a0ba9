"""Read and write the BOP dataset layout (https://bop.felk.cvut.cz/datasets/).

The same reader serves LINEMOD / LM-O downloaded from BOP and the project's own
synthetic data, so training code never branches on where images came from. Layout::

    <dataset>/models/models_info.json             per obj_id: diameter, min_*, size_* (mm)
    <dataset>/<split>/<scene_id:06d>/scene_camera.json   per im_id: cam_K (9 floats), depth_scale
    .../scene_gt.json        per im_id: list of {cam_R_m2c (9), cam_t_m2c (3, mm), obj_id}
    .../scene_gt_info.json   per im_id: list of {bbox_obj, bbox_visib, px_count_*, visib_fract}
    .../rgb/{im_id:06d}.png|.jpg
    .../mask/{im_id:06d}_{gt_idx:06d}.png, mask_visib/{im_id:06d}_{gt_idx:06d}.png
    .../depth/{im_id:06d}.png    uint16, depth_mm = value * depth_scale

BOP stores translations and sizes in millimetres; the package works in metres. The
conversion happens here and nowhere else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "MM_PER_M",
    "BopError",
    "BopImage",
    "BopSceneWriter",
    "GtInfo",
    "GtInstance",
    "ModelInfo",
    "camera_entry",
    "find_scene_dirs",
    "gt_entry",
    "gt_info_entry",
    "gt_info_from_masks",
    "mask_path",
    "read_dataset",
    "read_models_info",
    "read_scene",
    "write_image_files",
    "write_models_info",
    "write_scene_json",
]

_LOG = logging.getLogger(__name__)

MM_PER_M = 1000.0
"""BOP files are in millimetres; the package is in metres."""

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif")


class BopError(ValueError):
    """A BOP folder or file is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class GtInstance:
    """One annotated object instance.

    Attributes:
        obj_id: BOP object id.
        R: (3, 3) float64 rotation object -> camera.
        t: (3,) float64 translation object -> camera, metres.
    """

    obj_id: int
    R: np.ndarray
    t: np.ndarray


@dataclass(frozen=True)
class GtInfo:
    """BOP ``scene_gt_info`` entry of one instance (boxes are x, y, w, h in pixels;
    ``-1`` boxes when nothing is visible)."""

    bbox_obj: tuple[int, int, int, int]
    bbox_visib: tuple[int, int, int, int]
    px_count_all: int
    px_count_valid: int
    px_count_visib: int
    visib_fract: float


@dataclass(frozen=True)
class ModelInfo:
    """``models_info.json`` entry in metres.

    Attributes:
        obj_id: BOP object id.
        diameter: metres.
        bbox_min: (3,) metres; bbox_size: (3,) metres.
        symmetric: True when the entry lists discrete or continuous symmetries.
        raw: the entry as read (millimetres), for fields not modelled here.
    """

    obj_id: int
    diameter: float
    bbox_min: np.ndarray
    bbox_size: np.ndarray
    symmetric: bool
    raw: dict


@dataclass(frozen=True)
class BopImage:
    """One annotated image of a BOP scene.

    Attributes:
        scene_dir: the scene folder; scene_id, im_id: BOP ids.
        K: (3, 3) float64 intrinsics, pixels; depth_scale: mm per depth-PNG unit.
        instances: annotated objects in ``scene_gt`` order (gt_idx = position).
        infos: matching ``scene_gt_info`` entries, or None when that file is absent.
        rgb_path: the colour image file.
    """

    scene_dir: Path
    scene_id: int
    im_id: int
    K: np.ndarray
    depth_scale: float
    instances: tuple[GtInstance, ...]
    infos: tuple[GtInfo, ...] | None
    rgb_path: Path

    def mask_visib_path(self, gt_idx: int) -> Path:
        """Path of the visible-part mask of instance ``gt_idx``."""
        return mask_path(self.scene_dir, self.im_id, gt_idx, visible=True)

    def load_mask_visib(self, gt_idx: int) -> np.ndarray:
        """(H, W) bool visible-part mask of instance ``gt_idx``."""
        path = self.mask_visib_path(gt_idx)
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise BopError(f"cannot read mask {path}")
        return mask > 127


# ----------------------------------------------------------------------------- entries


def camera_entry(K: np.ndarray, depth_scale: float = 1.0) -> dict:
    """``scene_camera.json`` entry: ``cam_K`` as 9 row-major floats, ``depth_scale``."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise BopError(f"K must be a finite (3, 3) matrix, got shape {K.shape}")
    return {"cam_K": K.reshape(-1).tolist(), "depth_scale": float(depth_scale)}


def gt_entry(instance: GtInstance) -> dict:
    """``scene_gt.json`` entry; the translation is written in millimetres."""
    R = np.asarray(instance.R, dtype=np.float64)
    t = np.asarray(instance.t, dtype=np.float64).reshape(-1)
    if R.shape != (3, 3) or t.shape != (3,):
        raise BopError(f"instance of obj_id {instance.obj_id}: R must be (3, 3) and t (3,)")
    return {
        "cam_R_m2c": R.reshape(-1).tolist(),
        "cam_t_m2c": (t * MM_PER_M).tolist(),
        "obj_id": int(instance.obj_id),
    }


def gt_info_entry(info: GtInfo) -> dict:
    """``scene_gt_info.json`` entry."""
    return {
        "bbox_obj": [int(v) for v in info.bbox_obj],
        "bbox_visib": [int(v) for v in info.bbox_visib],
        "px_count_all": int(info.px_count_all),
        "px_count_valid": int(info.px_count_valid),
        "px_count_visib": int(info.px_count_visib),
        "visib_fract": float(info.visib_fract),
    }


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (-1, -1, -1, -1)
    x0, y0 = int(xs.min()), int(ys.min())
    return (x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1)


def gt_info_from_masks(
    mask_all: np.ndarray,
    mask_visib: np.ndarray,
    full_silhouette: tuple[tuple[int, int, int, int], int] | None = None,
) -> GtInfo:
    """BOP info from the unoccluded silhouette and the visible part, both (H, W) bool.

    ``full_silhouette``: ``(bbox_obj, px_count_all)`` of the whole silhouette of an object
    that the image border cuts (the renderer's ``full_silhouette``). BOP defines
    ``bbox_obj``, ``px_count_all`` and so ``visib_fract`` on the whole silhouette, the part
    outside the image included; without it they come from ``mask_all``, which is exact
    for objects inside the image. ``px_count_valid`` is the in-image part of the
    silhouette (synthetic depth is valid everywhere inside the image).
    """
    n_in = int(np.count_nonzero(mask_all))
    n_vis = int(np.count_nonzero(mask_visib))
    bbox_obj, n_all = _bbox(mask_all), n_in
    if full_silhouette is not None:
        bbox_obj, n_all = tuple(int(v) for v in full_silhouette[0]), max(int(full_silhouette[1]), n_in)
    return GtInfo(
        bbox_obj=bbox_obj,
        bbox_visib=_bbox(mask_visib),
        px_count_all=n_all,
        px_count_valid=n_in,
        px_count_visib=n_vis,
        visib_fract=float(n_vis / n_all) if n_all else 0.0,
    )


# ----------------------------------------------------------------------------- writing


def mask_path(scene_dir: str | Path, im_id: int, gt_idx: int, visible: bool = True) -> Path:
    """``mask_visib/`` (or ``mask/``) file of one instance."""
    return Path(scene_dir) / ("mask_visib" if visible else "mask") / f"{im_id:06d}_{gt_idx:06d}.png"


def write_image_files(
    scene_dir: str | Path,
    im_id: int,
    rgb: np.ndarray,
    masks_visib: Sequence[np.ndarray],
    *,
    masks_all: Sequence[np.ndarray] | None = None,
    depth: np.ndarray | None = None,
    depth_scale: float = 0.1,
    image_ext: str = "jpg",
    jpeg_quality: int = 95,
) -> Path:
    """Write one image's files (rgb, masks, optional depth); returns the rgb path.

    Args:
        rgb: (H, W, 3) uint8, RGB order.
        masks_visib / masks_all: per instance (H, W) bool, in ``scene_gt`` order.
        depth: (H, W) float32 metres (0 = none), stored as uint16 of ``depth_scale`` mm.
        image_ext: 'jpg' (fast, as BOP's PBR sets) or 'png' (lossless).
    """
    scene_dir = Path(scene_dir)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BopError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    ext = image_ext.lower().lstrip(".")
    if f".{ext}" not in _IMAGE_EXTS:
        raise BopError(f"image_ext must be one of {_IMAGE_EXTS}, got {image_ext!r}")
    rgb_path = scene_dir / "rgb" / f"{im_id:06d}.{ext}"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in ("jpg", "jpeg") else []
    _imwrite(rgb_path, np.ascontiguousarray(rgb[..., ::-1]), params)
    for visible, masks in ((True, masks_visib), (False, masks_all)):
        for gt_idx, mask in enumerate(masks or ()):
            _imwrite(
                mask_path(scene_dir, im_id, gt_idx, visible), (np.asarray(mask) > 0).astype(np.uint8) * 255
            )
    if depth is not None:
        d = np.clip(np.rint(np.asarray(depth) * MM_PER_M / depth_scale), 0, 65535).astype(np.uint16)
        _imwrite(scene_dir / "depth" / f"{im_id:06d}.png", d)
    return rgb_path


def _imwrite(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, list(params)):
        raise BopError(f"cannot write {path}")


def _dump_by_id(path: Path, table: dict[int, object]) -> None:
    """One entry per line, keys sorted numerically, as bop_toolkit writes them."""
    lines = [f'  "{k}": {json.dumps(table[k])}' for k in sorted(table)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def write_scene_json(
    scene_dir: str | Path,
    camera: dict[int, dict],
    gt: dict[int, list[dict]],
    gt_info: dict[int, list[dict]] | None = None,
) -> None:
    """Write ``scene_camera.json``, ``scene_gt.json`` and ``scene_gt_info.json``."""
    scene_dir = Path(scene_dir)
    _dump_by_id(scene_dir / "scene_camera.json", camera)
    _dump_by_id(scene_dir / "scene_gt.json", gt)
    if gt_info is not None:
        _dump_by_id(scene_dir / "scene_gt_info.json", gt_info)


class BopSceneWriter:
    """Accumulate a scene image by image, then write its JSON files on :meth:`close`."""

    def __init__(self, scene_dir: str | Path, image_ext: str = "jpg", depth_scale: float = 0.1):
        """Args: scene_dir: folder ``<split>/<scene_id:06d>``; image_ext: 'jpg' or 'png';
        depth_scale: mm per depth-PNG unit."""
        self.scene_dir = Path(scene_dir)
        self.image_ext, self.depth_scale = image_ext, float(depth_scale)
        self.camera: dict[int, dict] = {}
        self.gt: dict[int, list[dict]] = {}
        self.gt_info: dict[int, list[dict]] = {}

    def add(
        self,
        im_id: int,
        rgb: np.ndarray,
        K: np.ndarray,
        instances: Sequence[GtInstance],
        masks_visib: Sequence[np.ndarray],
        *,
        masks_all: Sequence[np.ndarray] | None = None,
        depth: np.ndarray | None = None,
    ) -> None:
        """Write one image's files and remember its annotations (metres in, mm out)."""
        if len(masks_visib) != len(instances) or (masks_all is not None and len(masks_all) != len(instances)):
            raise BopError(f"image {im_id}: need one mask per instance ({len(instances)})")
        write_image_files(
            self.scene_dir,
            im_id,
            rgb,
            masks_visib,
            masks_all=masks_all,
            depth=depth,
            depth_scale=self.depth_scale,
            image_ext=self.image_ext,
        )
        self.camera[im_id] = camera_entry(K, self.depth_scale)
        self.gt[im_id] = [gt_entry(inst) for inst in instances]
        alls = masks_all if masks_all is not None else masks_visib
        self.gt_info[im_id] = [
            gt_info_entry(gt_info_from_masks(a, v)) for a, v in zip(alls, masks_visib, strict=True)
        ]

    def close(self) -> None:
        """Write the scene's JSON files."""
        write_scene_json(self.scene_dir, self.camera, self.gt, self.gt_info)


def write_models_info(path: str | Path, infos: dict[int, dict]) -> None:
    """Write ``models_info.json`` (entries already in millimetres, BOP field names)."""
    _dump_by_id(Path(path), {int(k): v for k, v in infos.items()})


# ----------------------------------------------------------------------------- reading


def _load_json(path: Path) -> dict:
    try:
        with path.open() as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise BopError(f"missing BOP file {path}") from exc
    except json.JSONDecodeError as exc:
        raise BopError(f"malformed JSON in {path}: {exc}") from exc


def _floats(entry: dict, key: str, n: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(entry[key], dtype=np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError) as exc:
        raise BopError(f"{where}: field '{key}' missing or not numeric") from exc
    if arr.shape != (n,):
        raise BopError(f"{where}: field '{key}' must have {n} numbers, got {arr.size}")
    return arr


def read_models_info(path: str | Path) -> dict[int, ModelInfo]:
    """Read ``models_info.json``; sizes are converted to metres."""
    path = Path(path)
    out = {}
    for key, e in _load_json(path).items():
        where = f"{path} obj {key}"
        out[int(key)] = ModelInfo(
            obj_id=int(key),
            diameter=float(_floats(e, "diameter", 1, where)[0]) / MM_PER_M,
            bbox_min=np.array([e.get("min_x", 0.0), e.get("min_y", 0.0), e.get("min_z", 0.0)]) / MM_PER_M,
            bbox_size=np.array([e.get("size_x", 0.0), e.get("size_y", 0.0), e.get("size_z", 0.0)]) / MM_PER_M,
            symmetric=bool(e.get("symmetries_discrete") or e.get("symmetries_continuous")),
            raw=e,
        )
    return out


def _find_rgb(scene_dir: Path, im_id: int) -> Path:
    for folder in ("rgb", "gray"):
        for ext in _IMAGE_EXTS:
            p = scene_dir / folder / f"{im_id:06d}{ext}"
            if p.is_file():
                return p
    raise BopError(f"no image for im_id {im_id} in {scene_dir / 'rgb'}")


def read_scene(scene_dir: str | Path) -> list[BopImage]:
    """Read one BOP scene folder; images sorted by im_id.

    ``scene_gt_info.json`` is optional (then ``infos`` is None); the rest is required.
    """
    scene_dir = Path(scene_dir)
    try:
        scene_id = int(scene_dir.name)
    except ValueError:
        scene_id = 0
    cameras = _load_json(scene_dir / "scene_camera.json")
    gts = _load_json(scene_dir / "scene_gt.json")
    info_path = scene_dir / "scene_gt_info.json"
    infos = _load_json(info_path) if info_path.is_file() else None
    images = []
    for key in sorted(gts, key=int):
        im_id = int(key)
        if key not in cameras:
            raise BopError(f"{scene_dir}: im_id {im_id} has ground truth but no scene_camera entry")
        where = f"{scene_dir} im_id {im_id}"
        K = _floats(cameras[key], "cam_K", 9, where).reshape(3, 3)
        instances = tuple(
            GtInstance(
                obj_id=int(g["obj_id"]),
                R=_floats(g, "cam_R_m2c", 9, where).reshape(3, 3),
                t=_floats(g, "cam_t_m2c", 3, where) / MM_PER_M,
            )
            for g in gts[key]
        )
        image_infos = None
        if infos is not None and key in infos:
            image_infos = tuple(
                GtInfo(
                    tuple(i["bbox_obj"]),
                    tuple(i["bbox_visib"]),
                    int(i["px_count_all"]),
                    int(i["px_count_valid"]),
                    int(i["px_count_visib"]),
                    float(i["visib_fract"]),
                )
                for i in infos[key]
            )
            if len(image_infos) != len(instances):
                raise BopError(
                    f"{where}: scene_gt_info has {len(image_infos)} entries, scene_gt {len(instances)}"
                )
        images.append(
            BopImage(
                scene_dir=scene_dir,
                scene_id=scene_id,
                im_id=im_id,
                K=K,
                depth_scale=float(cameras[key].get("depth_scale", 1.0)),
                instances=instances,
                infos=image_infos,
                rgb_path=_find_rgb(scene_dir, im_id),
            )
        )
    return images


def find_scene_dirs(root: str | Path) -> list[Path]:
    """Scene folders under ``root``: root itself when it is a scene, else its children,
    else its grandchildren (a dataset folder with split folders); sorted."""
    root = Path(root)
    if not root.is_dir():
        raise BopError(f"BOP folder not found: {root}")
    if (root / "scene_gt.json").is_file():
        return [root]
    for pattern in ("*/scene_gt.json", "*/*/scene_gt.json"):
        found = sorted(p.parent for p in root.glob(pattern))
        if found:
            return found
    raise BopError(f"no BOP scene (a folder with scene_gt.json) under {root}")


def read_dataset(root: str | Path, scene_ids: Iterable[int] | None = None) -> list[BopImage]:
    """All images of all scenes under ``root`` (optionally only ``scene_ids``)."""
    wanted = None if scene_ids is None else {int(s) for s in scene_ids}
    images = []
    for scene_dir in find_scene_dirs(root):
        if wanted is not None and scene_dir.name.isdigit() and int(scene_dir.name) not in wanted:
            continue
        images.extend(read_scene(scene_dir))
    _LOG.info("read %d images from %s", len(images), root)
    return images

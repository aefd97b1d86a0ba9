"""Torch dataset over any BOP-layout folder: network input + training targets + labels.

Per image: read the RGB file and its annotations (``data.bop``), apply one exact
view transform (resize to the network input, plus roll/zoom/shift when augmenting;
or, with ``crop_size``, a window around one object at the network's run-time scale;
see ``data.augment``), pick the canonical pose of symmetric objects
(``geometry.symmetry``), project the catalogue's 3D keypoints with the transformed pose
and intrinsics, and build the belief maps and vector fields with the geometry core's
``targets`` (the one implementation the decoder is tested against).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hrpose_ros.data.augment import (
    AugmentParams,
    ViewTransform,
    crop_view_transform,
    photometric,
    random_view_transform,
    view_transform,
)
from hrpose_ros.data.bop import BopError, BopImage, read_dataset
from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS, Keypoint
from hrpose_ros.geometry.objects import Catalogue
from hrpose_ros.geometry.symmetry import canonical_pose, equivalent_poses
from hrpose_ros.geometry.targets import (
    CORNER_OFFSETS,
    DEFAULT_OFFSET_SCALE,
    TO_CENTROID,
    VECTOR_FIELDS,
    belief_maps,
    corner_offsets,
    vector_fields,
)
from hrpose_ros.network.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["BopPoseDataset", "DatasetError", "collate", "normalize_image"]

_LOG = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Bad dataset argument (names it) or an unreadable image."""


def _normalize_luts() -> np.ndarray:
    levels = np.arange(256, dtype=np.float64) / 255.0
    return np.stack([(levels - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]).astype(
        np.float32
    )


_LUTS = _normalize_luts()  # (3, 256): uint8 level -> normalised float, per channel


def normalize_image(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32: /255, then ImageNet mean/std.

    A per-channel lookup table (256 entries) is twice as fast as float arithmetic.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise DatasetError(f"image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    out = np.empty((3, *rgb.shape[:2]), np.float32)
    for c in range(3):
        np.take(_LUTS[c], rgb[..., c], out=out[c])
    return out


class BopPoseDataset(Dataset):
    """Samples of a BOP folder for the HRPose network.

    Each item is a dict of tensors:
        image (3, H, W) float32 normalised RGB; belief (C*9, H/s, W/s) and
        vectors (C*16, H/s, W/s) in ``target_dtype`` (float32 by default);
        R (M, 3, 3) and t (M, 3) float64 (metres); K (3, 3) float64 of the network input;
        class_index (M,) int64; obj_id (M,) int64;
        keypoints_2d (M, 9, 2) float64 input pixels; visible (M,) bool (used for targets);
        scene_id, im_id () int64.
    M counts the instances whose obj_id is in the catalogue; other objects are background.

    When some object of the catalogue has symmetries (A = the most any object has), also:
        keypoints_2d_alternatives (M, A, 9, 2): the keypoints of the pose's other symmetric
        equivalents (NaN where an object has fewer, e.g. none); and, with targets of kind
        ``corner_offsets``, offset_alternatives (A, C*16, H/s, W/s): the offsets those
        keypoints give. ``keypoints_2d`` and ``vectors`` stay the canonical pose's. The
        offset loss takes the least error over them (``training.losses.offset_loss``).
    """

    def __init__(
        self,
        root: str | Path,
        catalogue: Catalogue,
        input_size: tuple[int, int] = (640, 480),
        stride: int = 4,
        *,
        sigma: float = 2.0,
        radius: float = 3.0,
        augment: AugmentParams | bool | None = None,
        scene_ids: Iterable[int] | None = None,
        min_visib_fract: float = 0.1,
        seed: int = 0,
        target_dtype: torch.dtype = torch.float32,
        with_targets: bool = True,
        crop_size: tuple[int, int] | None = None,
        crop_offset_fraction: float = 0.35,
        vector_field: str = TO_CENTROID,
        offset_scale: float = DEFAULT_OFFSET_SCALE,
    ):
        """Args:
        root: a BOP scene, split or dataset folder (see ``bop.find_scene_dirs``).
        catalogue: classes in network order; instances match on ``ObjectSpec.id``.
        input_size: (W, H) of the network input, multiples of ``stride``.
        stride, sigma, radius: target geometry (output pixels), as ``geometry.targets``.
        vector_field: ``to_centroid`` (the paper's) or ``corner_offsets``
            (``geometry.targets.VECTOR_FIELDS``); offset_scale: output pixels per unit of
            ``corner_offsets``.
        augment: online augmentation ranges; True = the ``AugmentParams`` defaults;
            None or False = a plain resize.
        scene_ids: only these scenes (train/validation split by scene).
        min_visib_fract: instances less visible than this get no targets (BOP
            ``visib_fract``; all count when ``scene_gt_info.json`` is absent).
        seed: base seed of the augmentation.
        target_dtype: dtype of ``belief``/``vectors`` (torch.float16 halves the bytes
            that DataLoader workers hand to the training process).
        with_targets: False leaves ``belief``/``vectors`` out of the samples, for
            building them on the training device with ``training.targets_torch``
            (``batch_targets``): the fast path for a GPU that eats 1000 images/s.
        crop_size: (W, H) of a window around one annotated object, cut from the image
            resized by the network's letterbox scale (``input_size``): samples show
            objects at their run-time size at a fraction of the full frame's cost.
            None: the whole image at ``input_size``.
        crop_offset_fraction: the object centre lands up to this fraction of the window
            size away from the window centre (uniform), so the network does not learn
            that objects sit in the middle.
        """
        w, h = (int(v) for v in input_size)
        if w <= 0 or h <= 0 or w % stride or h % stride:
            raise DatasetError(f"input_size {input_size} must be positive multiples of stride {stride}")
        if crop_size is not None:
            cw, ch = (int(v) for v in crop_size)
            if cw <= 0 or ch <= 0 or cw % stride or ch % stride:
                raise DatasetError(f"crop_size {crop_size} must be positive multiples of stride {stride}")
            crop_size = (cw, ch)
        if vector_field not in VECTOR_FIELDS:
            raise DatasetError(f"vector_field must be one of {VECTOR_FIELDS}, got {vector_field!r}")
        self.vector_field, self.offset_scale = vector_field, float(offset_scale)
        if not 0 <= crop_offset_fraction <= 0.5:
            raise DatasetError(f"crop_offset_fraction must lie in [0, 0.5], got {crop_offset_fraction}")
        self.crop_size, self.crop_offset_fraction = crop_size, float(crop_offset_fraction)
        if len(catalogue) == 0:
            raise DatasetError("catalogue is empty")
        self.input_size, self.stride = (w, h), int(stride)
        self.sigma, self.radius = float(sigma), float(radius)
        self.augment: AugmentParams | None = AugmentParams() if augment is True else (augment or None)
        self.catalogue, self.min_visib_fract, self.seed = catalogue, min_visib_fract, seed
        self.target_dtype, self.with_targets = target_dtype, with_targets
        self._class_of = {spec.id: i for i, spec in enumerate(catalogue)}
        self._keypoints = catalogue.keypoints_3d()
        self.num_alternatives = max(len(spec.symmetries) for spec in catalogue)
        try:
            self.images: list[BopImage] = read_dataset(root, scene_ids)
        except BopError as exc:
            raise DatasetError(str(exc)) from exc
        if not self.images:
            raise DatasetError(f"no images under {root} (scene_ids={scene_ids})")
        self._calls = 0

    def __len__(self) -> int:
        return len(self.images)

    def state_dict(self) -> dict[str, int]:
        """The augmentation draw counter, so a resumed run replays the same augmentations."""
        return {"calls": self._calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore ``state_dict()`` (the trainer does so at the start of a resumed epoch)."""
        self._calls = int(state["calls"])

    def _rng(self, index: int) -> np.random.Generator:
        # In DataLoader workers, torch gives each worker its own seed and re-draws them
        # every epoch (from torch's RNG, so torch.manual_seed makes runs repeatable); the
        # call counter varies the draw between epochs in the main process.
        info = torch.utils.data.get_worker_info()
        worker_seed = 0 if info is None else info.seed % 2**32
        self._calls += 1
        return np.random.default_rng([self.seed, index, worker_seed, self._calls])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        entry = self.images[index]
        bgr = cv2.imread(str(entry.rgb_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"cannot read image {entry.rgb_path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        keep = [i for i, inst in enumerate(entry.instances) if inst.obj_id in self._class_of]
        cls = np.array([self._class_of[entry.instances[i].obj_id] for i in keep], dtype=np.int64)
        R = np.array([entry.instances[i].R for i in keep], dtype=np.float64).reshape(-1, 3, 3)
        t = np.array([entry.instances[i].t for i in keep], dtype=np.float64).reshape(-1, 3)
        visible = np.array(
            [entry.infos is None or entry.infos[i].visib_fract >= self.min_visib_fract for i in keep],
            dtype=bool,
        )
        src_size = (rgb.shape[1], rgb.shape[0])
        rng = self._rng(index) if self.augment is not None else None
        if self.crop_size is not None:
            view = self._crop_view(rng, entry.K, R, t, cls, visible, src_size)
            rgb = self._warp(view, rgb, rng)
        elif rng is not None:
            view = random_view_transform(rng, entry.K, src_size, self.input_size, self.augment)
            rgb = self._warp(view, rgb, rng)
        else:
            view = view_transform(entry.K, src_size, self.input_size)
            if src_size != self.input_size:  # cv2.resize maps pixel centres exactly as view.A does
                rgb = cv2.resize(rgb, self.input_size, interpolation=cv2.INTER_AREA)
        R, t = view.apply_pose(R, t)
        for m in range(len(keep)):
            symmetries = self.catalogue[int(cls[m])].symmetries
            if symmetries:
                R[m], t[m] = canonical_pose(R[m], t[m], symmetries)
        kp = np.full((len(keep), NUM_KEYPOINTS, 2), np.nan)
        for m in range(len(keep)):
            kp[m] = project_points(self._keypoints[cls[m]], R[m], t[m], view.K)
        alternatives = self._alternative_keypoints(R, t, cls, view.K)
        sample = {
            "image": torch.from_numpy(normalize_image(rgb)),
            "R": torch.from_numpy(R),
            "t": torch.from_numpy(t),
            "K": torch.from_numpy(view.K),
            "class_index": torch.from_numpy(cls),
            "obj_id": torch.tensor([entry.instances[i].obj_id for i in keep], dtype=torch.int64),
            "keypoints_2d": torch.from_numpy(kp),
            "visible": torch.from_numpy(visible),
            "scene_id": torch.tensor(entry.scene_id, dtype=torch.int64),
            "im_id": torch.tensor(entry.im_id, dtype=torch.int64),
        }
        if self.with_targets:
            sample["belief"], sample["vectors"] = self._targets(
                np.where(visible[:, None, None], kp, np.nan), cls
            )
        if alternatives is not None:
            sample["keypoints_2d_alternatives"] = torch.from_numpy(alternatives)
            if self.with_targets and self.vector_field == CORNER_OFFSETS:
                seen = np.where(visible[:, None, None, None], alternatives, np.nan)
                sample["offset_alternatives"] = torch.stack(
                    [self._offsets(seen[:, a], cls) for a in range(self.num_alternatives)]
                )
        return sample

    def _alternative_keypoints(
        self, R: np.ndarray, t: np.ndarray, cls: np.ndarray, K: np.ndarray
    ) -> np.ndarray | None:
        """(M, A, 9, 2) keypoints of each instance's non-canonical equivalents (NaN where an
        object has fewer than A); None when no object of the catalogue has symmetries."""
        if not self.num_alternatives:
            return None
        out = np.full((len(cls), self.num_alternatives, NUM_KEYPOINTS, 2), np.nan)
        for m, c in enumerate(cls):
            symmetries = self.catalogue[int(c)].symmetries
            if symmetries:
                R_eq, t_eq = equivalent_poses(R[m], t[m], symmetries)
                for a in range(len(symmetries)):
                    out[m, a] = project_points(self._keypoints[c], R_eq[a + 1], t_eq[a + 1], K)
        return out

    def _warp(self, view: ViewTransform, rgb: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Warp into the sample's frame; with augmentation, a random border colour and the
        photometric ops."""
        if rng is None:
            return view.warp(rgb)
        border = tuple(int(v) for v in rng.integers(0, 256, 3))
        return photometric(view.warp(rgb, border_value=border), rng, self.augment)

    def _crop_view(  # noqa: PLR0917 (private helper: the sample's pieces, in order)
        self,
        rng: np.random.Generator | None,
        K: np.ndarray,
        R: np.ndarray,
        t: np.ndarray,
        cls: np.ndarray,
        visible: np.ndarray,
        src_size: tuple[int, int],
    ) -> ViewTransform:
        """A ``crop_size`` window around one visible object (random with ``rng``, else the
        first), at the letterbox scale of ``input_size`` times a random zoom."""
        scale = min(self.input_size[0] / src_size[0], self.input_size[1] / src_size[1])
        candidates = np.flatnonzero(visible)
        if len(candidates):
            m = int(candidates[0] if rng is None else rng.choice(candidates))
            centroid = self._keypoints[cls[m], Keypoint.CENTROID]
            center = project_points(centroid[None], R[m], t[m], K)[0]
        else:
            center = np.array([(src_size[0] - 1) / 2.0, (src_size[1] - 1) / 2.0])
        if rng is None or self.augment is None:
            return crop_view_transform(K, scale, (float(center[0]), float(center[1])), self.crop_size)
        lo, hi = self.augment.scale_range
        zoom = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        angle = np.deg2rad(rng.uniform(-self.augment.rotation_deg, self.augment.rotation_deg))
        offset = rng.uniform(-1.0, 1.0, size=2) * self.crop_offset_fraction * np.asarray(self.crop_size)
        return crop_view_transform(
            K,
            scale * zoom,
            (float(center[0]), float(center[1])),
            self.crop_size,
            angle_rad=float(angle),
            offset=(float(offset[0]), float(offset[1])),
        )

    def _out_hw(self) -> tuple[int, int]:
        size = self.crop_size or self.input_size
        return size[1] // self.stride, size[0] // self.stride

    def _targets(self, keypoints_2d: np.ndarray, cls: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Geometry-core targets of the visible instances, in ``target_dtype``."""
        C, out_hw = len(self.catalogue), self._out_hw()
        belief = torch.from_numpy(belief_maps(keypoints_2d, cls, C, out_hw, self.stride, self.sigma))
        if self.vector_field == CORNER_OFFSETS:
            return belief.to(self.target_dtype), self._offsets(keypoints_2d, cls)
        vectors = vector_fields(keypoints_2d, cls, C, out_hw, self.stride, self.radius)
        return belief.to(self.target_dtype), torch.from_numpy(vectors).to(self.target_dtype)

    def _offsets(self, keypoints_2d: np.ndarray, cls: np.ndarray) -> torch.Tensor:
        """``corner_offsets`` targets of these keypoints, in ``target_dtype``."""
        C, out_hw = len(self.catalogue), self._out_hw()
        offsets = corner_offsets(keypoints_2d, cls, C, out_hw, self.stride, self.radius, self.offset_scale)
        return torch.from_numpy(offsets).to(self.target_dtype)


_PAD = {
    "R": np.nan,
    "t": np.nan,
    "keypoints_2d": np.nan,
    "keypoints_2d_alternatives": np.nan,
    "class_index": -1,
    "obj_id": -1,
    "visible": False,
}


def collate(batch: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples; per-instance fields are padded to the largest M of the batch
    (NaN for poses/keypoints, -1 for ids, False for ``visible``), and
    ``num_instances`` (N,) gives each sample's M."""
    if not batch:
        raise DatasetError("cannot collate an empty batch")
    counts = [int(s["class_index"].shape[0]) for s in batch]
    m_max = max(counts)
    out: dict[str, torch.Tensor] = {"num_instances": torch.tensor(counts, dtype=torch.int64)}
    for key in batch[0]:
        if key in _PAD:
            first = batch[0][key]
            padded = torch.full((len(batch), m_max, *first.shape[1:]), _PAD[key], dtype=first.dtype)
            for i, s in enumerate(batch):
                padded[i, : counts[i]] = s[key]
            out[key] = padded
        else:
            out[key] = torch.stack([s[key] for s in batch])
    return out

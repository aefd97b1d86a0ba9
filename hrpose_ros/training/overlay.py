"""Sample overlays for TensorBoard: ground-truth and predicted cuboids on training images.

Predictions go through the geometry core (decode -> PnP -> projection), so what the overlay
shows is what evaluation scores: white = ground-truth keypoints, class colour = the
projected cuboid of the estimated pose.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.decode import DecodeParams, decode
from hrpose_ros.geometry.draw import draw_cuboid
from hrpose_ros.geometry.objects import Catalogue
from hrpose_ros.geometry.pnp import solve_instance_pose
from hrpose_ros.geometry.targets import DEFAULT_OFFSET_SCALE, TO_CENTROID
from hrpose_ros.network.model import OUTPUT_STRIDE
from hrpose_ros.network.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["denormalize", "draw_predictions", "sample_overlays"]


def denormalize(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) ImageNet-normalised tensor -> (H, W, 3) uint8 RGB."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (image.detach().float().cpu() * std + mean).clamp(0, 1) * 255.0
    return np.ascontiguousarray(rgb.round().byte().permute(1, 2, 0).numpy())


def draw_predictions(
    rgb: np.ndarray,
    belief: np.ndarray,
    vectors: np.ndarray,
    K: np.ndarray,
    catalogue: Catalogue,
    *,
    gt_keypoints: Sequence[np.ndarray] = (),
    params: DecodeParams | None = None,
    vector_field: str = TO_CENTROID,
    offset_scale: float = DEFAULT_OFFSET_SCALE,
) -> np.ndarray:
    """Draw ground-truth keypoints (white) and decoded + PnP poses (class colour) on a copy of ``rgb``.

    Args:
        rgb: (H, W, 3) uint8 network-input image.
        belief, vectors: (C*9, h, w), (C*16, h, w) network outputs of that image.
        K: (3, 3) intrinsics of the network-input image.
        catalogue: classes in channel order (3D keypoints, colours).
        gt_keypoints: (9, 2) ground-truth keypoints per instance, input pixels.
        vector_field, offset_scale: what ``vectors`` holds (``geometry.targets``).
    """
    canvas = rgb.copy()
    for kp in gt_keypoints:
        draw_cuboid(canvas, kp, (255, 255, 255), thickness=1)
    found = decode(
        belief,
        vectors,
        len(catalogue),
        params or DecodeParams(),
        stride=OUTPUT_STRIDE,
        vector_field=vector_field,
        offset_scale=offset_scale,
    )
    for inst in found:
        obj = catalogue[inst.class_index]
        pose = solve_instance_pose(inst, obj.keypoints, K)
        if pose is None:
            continue
        projected = project_points(obj.keypoints, pose.R, pose.t, K)
        draw_cuboid(canvas, projected, tuple(int(255 * c) for c in obj.color), thickness=1)
    return canvas


@torch.no_grad()
def sample_overlays(
    model: nn.Module, dataset: Dataset, catalogue: Catalogue, device: torch.device, count: int = 4
) -> list[np.ndarray]:
    """Overlays of the first ``count`` dataset items, (H, W, 3) uint8 RGB each (model left in eval mode)."""
    model.eval()
    images = []
    for index in range(min(count, len(dataset))):
        item = dataset[index]
        out = model(item["image"][None].to(device))
        gt = np.asarray(item["keypoints_2d"], dtype=np.float64).reshape(-1, 9, 2)
        images.append(
            draw_predictions(
                denormalize(item["image"]),
                out["belief"][0].float().cpu().numpy(),
                out["vectors"][0].float().cpu().numpy(),
                np.asarray(item["K"], dtype=np.float64),
                catalogue,
                gt_keypoints=[kp for kp in gt if np.isfinite(kp).any()],
                vector_field=getattr(dataset, "vector_field", TO_CENTROID),
                offset_scale=getattr(dataset, "offset_scale", DEFAULT_OFFSET_SCALE),
            )
        )
    return images

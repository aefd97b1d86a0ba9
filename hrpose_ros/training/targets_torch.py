"""Torch twin of ``geometry.targets``: the same belief maps and vector fields, batched on
the training device.

Why a twin: at 640x480 with 8 classes, the numpy targets cost DataLoader workers about
20 ms per image and 15 MB of float32 per sample to hand over; built on the GPU from
the keypoints they take well under a millisecond per batch. The numpy functions stay
the reference: ``test/test_targets_torch.py`` checks that both agree.
Same names, same conventions (output pixel j covers input pixels [s*j, s*j + s - 1];
channels ``c*9 + k`` and ``c*16 + 2k``, ``c*16 + 2k + 1``).
"""

from __future__ import annotations

import torch

from hrpose_ros.geometry.keypoints import NUM_CORNERS, NUM_KEYPOINTS, VECTOR_CHANNELS_PER_CLASS, Keypoint
from hrpose_ros.geometry.targets import CORNER_OFFSETS, DEFAULT_OFFSET_SCALE, TO_CENTROID, VECTOR_FIELDS

__all__ = [
    "TargetError",
    "batch_targets",
    "belief_maps",
    "corner_offsets",
    "vector_fields",
]


class TargetError(ValueError):
    """Bad keypoint or class-index tensors (shapes named in the message)."""


def _prepare(
    keypoints_2d: torch.Tensor, class_indices: torch.Tensor, stride: int
) -> tuple[torch.Tensor, ...]:
    kp = keypoints_2d
    if kp.dim() != 4 or kp.shape[2:] != (NUM_KEYPOINTS, 2):
        raise TargetError(f"keypoints_2d must have shape (N, M, {NUM_KEYPOINTS}, 2), got {tuple(kp.shape)}")
    if class_indices.shape != kp.shape[:2]:
        raise TargetError(
            f"class_indices must have shape {tuple(kp.shape[:2])}, got {tuple(class_indices.shape)}"
        )
    xy = (kp.float() - (stride - 1) / 2.0) / stride  # output-map pixels
    finite = torch.isfinite(xy).all(dim=-1) & (class_indices >= 0)[..., None]  # (N, M, 9)
    return xy, finite


def belief_maps(  # noqa: PLR0917 (the numpy twin's signature)
    keypoints_2d: torch.Tensor,
    class_indices: torch.Tensor,
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int = 4,
    sigma: float = 2.0,
) -> torch.Tensor:
    """Batched ``geometry.targets.belief_maps``.

    Args:
        keypoints_2d: (N, M, 9, 2) input-image pixels; NaN = unknown (and padding).
        class_indices: (N, M) int64; -1 marks padding.
        num_classes: C; out_hw: (h, w); stride: input px per output px; sigma: output px.

    Returns:
        (N, C*9, h, w) float32 on the keypoints' device: maximum over instances.
    """
    xy, finite = _prepare(keypoints_2d, class_indices, stride)
    h, w = out_hw
    dev = xy.device
    x = torch.where(finite, xy[..., 0], torch.inf)[..., None]
    y = torch.where(finite, xy[..., 1], torch.inf)[..., None]
    gx = torch.exp(-((torch.arange(w, device=dev) - x) ** 2) / (2 * sigma**2))  # (N, M, 9, w)
    gy = torch.exp(-((torch.arange(h, device=dev) - y) ** 2) / (2 * sigma**2))  # (N, M, 9, h)
    g = gy[..., :, None] * gx[..., None, :]  # (N, M, 9, h, w)
    out = torch.zeros((xy.shape[0], num_classes, NUM_KEYPOINTS, h, w), device=dev)
    for c in range(num_classes):
        member = (class_indices == c)[:, :, None, None, None]
        if member.any():
            out[:, c] = torch.where(member, g, 0.0).amax(dim=1)
    return out.reshape(xy.shape[0], num_classes * NUM_KEYPOINTS, h, w)


def vector_fields(  # noqa: PLR0917 (the numpy twin's signature)
    keypoints_2d: torch.Tensor,
    class_indices: torch.Tensor,
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int = 4,
    radius: float = 3.0,
) -> torch.Tensor:
    """Batched ``geometry.targets.vector_fields``: unit vectors corner -> centroid within
    ``radius`` output px of the corner; the nearest corner of a class wins.

    Returns:
        (N, C*16, h, w) float32 on the keypoints' device.
    """
    xy, finite = _prepare(keypoints_2d, class_indices, stride)
    h, w = out_hw
    dev = xy.device
    n = xy.shape[0]
    direction = xy[:, :, Keypoint.CENTROID, None, :] - xy[:, :, :NUM_CORNERS, :]  # (N, M, 8, 2)
    length = torch.linalg.vector_norm(direction, dim=-1)
    valid = finite[..., :NUM_CORNERS] & finite[..., Keypoint.CENTROID, None] & (length > 1e-9)
    unit = torch.where(valid[..., None], direction / length.clamp_min(1e-9)[..., None], 0.0)
    cx = torch.where(valid, xy[..., :NUM_CORNERS, 0], torch.inf)[..., None, None]
    cy = torch.where(valid, xy[..., :NUM_CORNERS, 1], torch.inf)[..., None, None]
    d2 = (torch.arange(w, device=dev) - cx) ** 2 + (
        torch.arange(h, device=dev)[:, None] - cy
    ) ** 2  # (N,M,8,h,w)
    out = torch.zeros((n, num_classes, NUM_CORNERS, h, w, 2), device=dev)
    for c in range(num_classes):
        member = (class_indices == c)[:, :, None, None, None]
        if not member.any():
            continue
        d2_c = torch.where(member, d2, torch.inf)
        best, nearest = d2_c.min(dim=1)  # (N, 8, h, w)
        batch_idx = torch.arange(n, device=dev)[:, None, None, None]
        corner_idx = torch.arange(NUM_CORNERS, device=dev)[None, :, None, None]
        vec = unit[batch_idx, nearest, corner_idx]  # (N, 8, h, w, 2)
        out[:, c] = torch.where((best <= radius**2)[..., None], vec, 0.0)
    return out.permute(0, 1, 2, 5, 3, 4).reshape(n, num_classes * VECTOR_CHANNELS_PER_CLASS, h, w)


def corner_offsets(  # noqa: PLR0917 (the numpy twin's signature)
    keypoints_2d: torch.Tensor,
    class_indices: torch.Tensor,
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int = 4,
    radius: float = 2.0,
    scale: float = DEFAULT_OFFSET_SCALE,
) -> torch.Tensor:
    """Batched ``geometry.targets.corner_offsets``: ``(corner_k - p) / scale`` at pixels p
    within ``radius`` output px of a centroid; the nearest centroid of a class wins.

    Returns:
        (N, C*16, h, w) float32 on the keypoints' device.
    """
    xy, finite = _prepare(keypoints_2d, class_indices, stride)
    h, w = out_hw
    dev = xy.device
    n = xy.shape[0]
    complete = finite.all(dim=-1)  # (N, M): all 9 keypoints known
    cx = torch.where(complete, xy[..., Keypoint.CENTROID, 0], torch.inf)[..., None, None]
    cy = torch.where(complete, xy[..., Keypoint.CENTROID, 1], torch.inf)[..., None, None]
    px = torch.arange(w, device=dev, dtype=xy.dtype)
    py = torch.arange(h, device=dev, dtype=xy.dtype)[:, None]
    d2 = (px - cx) ** 2 + (py - cy) ** 2  # (N, M, h, w)
    out = torch.zeros((n, num_classes, NUM_CORNERS, 2, h, w), device=dev)
    batch_idx = torch.arange(n, device=dev)[:, None, None]
    for c in range(num_classes):
        member = (class_indices == c)[:, :, None, None]
        if not member.any():
            continue
        best, nearest = torch.where(member, d2, torch.inf).min(dim=1)  # (N, h, w)
        corners = xy[batch_idx, nearest, :NUM_CORNERS]  # (N, h, w, 8, 2)
        offset = (corners - torch.stack(torch.broadcast_tensors(px, py), dim=-1)[:, :, None, :]) / scale
        inside = (best <= radius**2)[..., None, None]
        out[:, c] = torch.where(inside, offset, 0.0).permute(0, 3, 4, 1, 2)
    return out.reshape(n, num_classes * VECTOR_CHANNELS_PER_CLASS, h, w)


def batch_targets(  # noqa: PLR0917 (the targets' parameters, in their order)
    batch: dict[str, torch.Tensor],
    num_classes: int,
    out_hw: tuple[int, int],
    stride: int = 4,
    sigma: float = 2.0,
    radius: float = 3.0,
    vector_field: str = TO_CENTROID,
    offset_scale: float = DEFAULT_OFFSET_SCALE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Belief maps and vector fields (``vector_field``: ``geometry.targets.VECTOR_FIELDS``)
    of a collated ``BopPoseDataset`` batch (made with ``with_targets=False``), on the
    device of ``batch['keypoints_2d']``.

    Instances with ``visible`` False get no targets, as in the dataset.
    """
    if vector_field not in VECTOR_FIELDS:
        raise TargetError(f"vector_field must be one of {VECTOR_FIELDS}, got {vector_field!r}")
    kp = batch["keypoints_2d"]
    visible = batch["visible"].to(kp.device)
    kp = torch.where(visible[..., None, None], kp, torch.nan)
    cls = batch["class_index"].to(kp.device)
    if vector_field == CORNER_OFFSETS:
        vectors = corner_offsets(kp, cls, num_classes, out_hw, stride, radius, offset_scale)
    else:
        vectors = vector_fields(kp, cls, num_classes, out_hw, stride, radius)
    return belief_maps(kp, cls, num_classes, out_hw, stride, sigma), vectors

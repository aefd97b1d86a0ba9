"""Losses of HRPose: ground-truth MSE and integrated knowledge distillation.

``L = L_gt + alpha * L_out + beta * L_fs`` (paper defaults alpha = 0.5, beta = 5e-5):

- ``L_gt``: MSE between predicted and target belief maps, plus the same for vector fields
  of the paper's kind (``to_centroid``). For ``corner_offsets`` fields (geometry.targets)
  the vector term is instead the mean absolute error inside the centroid discs, times
  ``offset_weight``: the offsets are defined only there (zero elsewhere is "no target",
  not a value), and L1 is what CenterNet-style offset heads use. Optionally peak-weighted
  (``peak_weight`` > 0, not in the paper): each pixel's squared
  error counts ``1 + peak_weight * target`` times for belief maps and ``1 + peak_weight``
  times inside the vector-field discs. Why: about 1 % of the target pixels are non-zero,
  and a network trained by plain MSE first sits for thousands of steps at the all-zero
  output (loss ~2e-3, no detections); a 675-step CPU run never left it. Weighting the peaks
  makes the zero output costly from the first step. 0 (the default) is the paper's MSE;
- ``L_id`` (corner identity, optional, not in the paper; weight ``identity_weight``): at
  every pixel near a ground-truth corner (target belief > 0.5), cross-entropy between the
  softmax over the class's 8 corner channels (belief x ``identity_temperature``) and the
  targets' own share of each channel there. Why: the MSE of a heatmap barely changes when
  a peak sits in the wrong corner's channel, and on a CPU budget the network then finds the
  corners long before it learns which is which (measured: corner identity at chance, 12 %,
  after one epoch of 20k crops); the cross-entropy makes "which corner" an explicit 8-way
  classification at the places where it is decided. Inference is unchanged;
- ``L_out`` (output distillation): MSE between student and teacher belief maps, plus the
  same for vector fields;
- ``L_fs`` (feature-similarity distillation): mean squared difference between the spatial
  cosine-similarity matrices of the student's and the teacher's fused backbone maps,
  ``S[i, j] = cos(f_i, f_j)`` over spatial locations i, j.

Memory: at 640x480 input the stride-4 map has 160x120 = 19200 locations, and a
19200x19200 float matrix per image (1.4 GB) does not fit. Both feature maps are therefore
adaptive-average-pooled to the same grid of at most ``max_locations`` cells (default 768,
i.e. 32x24 for a 4:3 image, 2.4 MB per image), keeping the aspect ratio: each cell is the
mean feature of a block of about 5x5 stride-4 pixels. Maps already small enough are not
pooled.

Teacher outputs are always detached here, so gradients reach the student only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hrpose_ros.geometry.keypoints import VECTOR_CHANNELS_PER_CLASS
from hrpose_ros.geometry.targets import CORNER_OFFSETS, TO_CENTROID, VECTOR_FIELDS

__all__ = [
    "LossWeights",
    "corner_identity_loss",
    "feature_similarity_loss",
    "offset_loss",
    "offset_size_loss",
    "output_distillation_loss",
    "similarity_grid",
    "similarity_matrix",
    "target_loss",
    "total_loss",
]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the distillation terms and the similarity-matrix budget."""

    alpha: float = 0.5
    """Weight of output distillation ``L_out``."""
    beta: float = 5e-5
    """Weight of feature-similarity distillation ``L_fs``."""
    max_locations: int = 768
    """Most spatial cells of the pooled grid used for the similarity matrices."""
    peak_weight: float = 0.0
    """Extra weight of the target peaks in ``L_gt`` (0: the paper's plain MSE)."""
    identity_weight: float = 0.0
    """Weight of the corner-identity cross-entropy ``L_id`` (0: off, the paper's loss)."""
    identity_temperature: float = 10.0
    """Scale from belief values (about 0..1) to logits for ``L_id``."""
    vector_field: str = TO_CENTROID
    """Kind of the vector targets (``geometry.targets.VECTOR_FIELDS``)."""
    offset_weight: float = 1.0
    """Weight of the L1 term of ``corner_offsets`` fields."""
    size_weight: float = 0.0
    """Weight of ``offset_size_loss`` (``corner_offsets`` only; 0: off)."""


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def _weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return F.mse_loss(pred, target)
    return (weight * (pred - target).square()).mean()


def _alternatives_per_class(alternatives: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(N, A, C*16, h, w) symmetric alternatives -> (N, A, C, 16, h, w), checked against ``offsets``."""
    n, _, h, w = offsets.shape
    if alternatives.dim() != 5 or (alternatives.shape[0], *alternatives.shape[2:]) != (n, *offsets.shape[1:]):
        raise ValueError(
            f"offset alternatives must be (N, A, {tuple(offsets.shape[1:])}) for offsets "
            f"{tuple(offsets.shape)}, got {tuple(alternatives.shape)}"
        )
    return alternatives.float().reshape(n, alternatives.shape[1], -1, VECTOR_CHANNELS_PER_CLASS, h, w)


def offset_loss(
    pred_vectors: torch.Tensor, offsets: torch.Tensor, alternatives: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute error of ``corner_offsets`` fields where a class has a target.

    A class's 16 channels are supervised at the pixels where any of them is non-zero (a
    centroid disc: 8 distinct corners cannot all sit on the pixel); 0 without any.

    ``alternatives`` (N, A, C*16, h, w), the offsets of the symmetric equivalents of each
    pose (the dataset's ``offset_alternatives``): at each pixel a class's error is the
    least over the canonical target and the alternatives that have a target there. Why:
    the canonical choice flips from one equivalent to the other between two views that
    look the same (for the eggbox, the views where its long axis points at the camera), so
    a loss on the canonical corners alone asks for a jump that a network cannot make, and
    it averages the two instead (measured: eggbox corner identity 39 % there, 75 % away
    from it). Any equivalent is a right answer: PnP gives one of the equivalent poses, and
    ADD-S scores them the same. The least error is taken per pixel; the offsets of one
    object's centroid disc are read together and change smoothly, so they choose together.
    """
    total_abs = _least_error_where_targeted(
        pred_vectors, offsets, alternatives, lambda pred, target: (pred - target).abs().sum(dim=-3)
    )
    return total_abs / VECTOR_CHANNELS_PER_CLASS


def _least_error_where_targeted(
    pred_vectors: torch.Tensor,
    offsets: torch.Tensor,
    alternatives: torch.Tensor | None,
    error: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Mean of ``error(pred, target)`` (per class and pixel, over (..., C, 16, h, w) offsets)
    where a class has an offset target, each the least over the target and the symmetric
    ``alternatives`` that have a target there; 0 without any target. The one place the
    offset terms read targets and equivalents (``offset_loss``, ``offset_size_loss``)."""
    _check_same_shape(pred_vectors, offsets, "offset target")
    n, _, h, w = offsets.shape
    per_class = offsets.float().reshape(n, -1, VECTOR_CHANNELS_PER_CLASS, h, w)
    mask = (per_class != 0).any(dim=2)  # (N, C, h, w)
    if not bool(mask.any()):
        return pred_vectors.new_zeros((), dtype=torch.float32)
    pred = pred_vectors.float().reshape_as(per_class)
    least = error(pred, per_class)
    if alternatives is not None:
        alt = _alternatives_per_class(alternatives, offsets)
        alt_error = torch.where((alt != 0).any(dim=3), error(pred[:, None], alt), torch.inf)
        least = torch.minimum(least, alt_error.amin(dim=1))
    return least[mask].mean()


def _placed_size(per_class: torch.Tensor) -> torch.Tensor:
    """(..., 16, h, w) corner offsets (dx, dy per corner) -> (..., h, w) their mean length."""
    xy = per_class.unflatten(-3, (VECTOR_CHANNELS_PER_CLASS // 2, 2))
    return xy.norm(dim=-3).mean(dim=-3)


def offset_size_loss(
    pred_vectors: torch.Tensor, offsets: torch.Tensor, alternatives: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean ``|log(placed size / true size)|`` where a class has a ``corner_offsets`` target;
    the size of 8 offsets is their mean length. 0 without any target.

    Why: PnP reads an object's distance from the size of its placed cuboid, and ADD(-S)
    tolerates about 1 % of the depth for a small object at 0.75 m. The offsets' L1 is
    dominated by how the corners are turned: measured on held-out images, the wide
    networks place every object at the right pixel and orientation well enough for 83 %
    ADD(-S) at the true depth, yet 5-6 % off in depth (README, "Depth is what fails"). This
    term weighs the size alone, in relative terms. ``alternatives``: the symmetric
    equivalents (``offset_loss``); the least error over them is taken, as there.
    """
    eps = 1e-6

    def log_size_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (torch.log(_placed_size(pred) + eps) - torch.log(_placed_size(target) + eps)).abs()

    return _least_error_where_targeted(pred_vectors, offsets, alternatives, log_size_error)


def target_loss(
    pred: dict[str, torch.Tensor],
    belief: torch.Tensor,
    vectors: torch.Tensor,
    peak_weight: float = 0.0,
    *,
    vector_field: str = TO_CENTROID,
    offset_weight: float = 1.0,
    offset_alternatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L_gt``: MSE(belief) + MSE(vectors) (``to_centroid``) or ``offset_weight`` x
    ``offset_loss`` (``corner_offsets``, with the symmetric ``offset_alternatives`` if
    given); the MSE terms peak-weighted when ``peak_weight`` > 0.

    Args:
        pred: network output with ``belief`` (N, C*9, h, w) and ``vectors`` (N, C*16, h, w).
        belief: (N, C*9, h, w) target belief maps.
        vectors: (N, C*16, h, w) target vector fields of kind ``vector_field``.
        peak_weight: see the module docstring; 0 gives the paper's plain MSE.
    """
    _check_same_shape(pred["belief"], belief, "belief target")
    _check_same_shape(pred["vectors"], vectors, "vector target")
    if peak_weight < 0:
        raise ValueError(f"peak_weight must be >= 0, got {peak_weight}")
    if vector_field not in VECTOR_FIELDS:
        raise ValueError(f"vector_field must be one of {VECTOR_FIELDS}, got {vector_field!r}")
    belief, vectors = belief.float(), vectors.float()
    belief_weight = vector_weight = None
    if peak_weight > 0:
        belief_weight = 1.0 + peak_weight * belief
        vector_weight = 1.0 + peak_weight * (vectors != 0).float()
    loss = _weighted_mse(pred["belief"].float(), belief, belief_weight)
    if vector_field == CORNER_OFFSETS:
        return loss + offset_weight * offset_loss(pred["vectors"], vectors, offset_alternatives)
    return loss + _weighted_mse(pred["vectors"].float(), vectors, vector_weight)


def corner_identity_loss(
    pred_belief: torch.Tensor, belief: torch.Tensor, num_keypoints: int = 9, temperature: float = 10.0
) -> torch.Tensor:
    """``L_id``: cross-entropy over each class's corner channels where a corner is (see the
    module docstring); 0 when no pixel of the batch is near a corner.

    Args:
        pred_belief, belief: (N, C*K, h, w) predicted and target belief maps (K keypoints per
            class, the last one the centroid, which is not a corner).
    """
    _check_same_shape(pred_belief, belief, "belief target")
    n, ck, h, w = belief.shape
    if ck % num_keypoints:
        raise ValueError(f"belief has {ck} channels, not a multiple of {num_keypoints} keypoints")
    corners = num_keypoints - 1
    target = belief.float().reshape(n, ck // num_keypoints, num_keypoints, h, w)[:, :, :corners]
    logits = pred_belief.float().reshape(n, ck // num_keypoints, num_keypoints, h, w)[:, :, :corners]
    near = target.amax(dim=2) > 0.5  # (N, C, h, w): pixels close to some corner of the class
    if not bool(near.any()):
        return pred_belief.new_zeros((), dtype=torch.float32)
    share = target / target.sum(dim=2, keepdim=True).clamp_min(1e-6)
    log_p = F.log_softmax(temperature * logits, dim=2)
    ce = -(share * log_p).sum(dim=2)  # (N, C, h, w)
    return ce[near].mean()


def output_distillation_loss(
    student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]
) -> torch.Tensor:
    """``L_out``: MSE between student and (detached) teacher belief maps and vector fields."""
    loss = student["belief"].new_zeros((), dtype=torch.float32)
    for key in ("belief", "vectors"):
        _check_same_shape(student[key], teacher[key], f"output distillation ({key})")
        loss = loss + F.mse_loss(student[key].float(), teacher[key].detach().float())
    return loss


def similarity_grid(height: int, width: int, max_locations: int = 768) -> tuple[int, int]:
    """Grid (h, w) with at most ``max_locations`` cells and about the aspect ratio of height x width."""
    if height < 1 or width < 1 or max_locations < 1:
        raise ValueError(f"need positive sizes, got {height}x{width}, max_locations={max_locations}")
    if height * width <= max_locations:
        return height, width
    scale = math.sqrt(max_locations / (height * width))
    return max(1, int(height * scale)), max(1, int(width * scale))


def similarity_matrix(features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Spatial cosine-similarity matrix of a feature map pooled to ``grid``.

    Args:
        features: (N, F, H, W) feature map.
        grid: (h, w) pooled size.

    Returns:
        (N, h*w, h*w) float32, entry [n, i, j] = cosine similarity of locations i and j.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (N, F, H, W), got {tuple(features.shape)}")
    pooled = F.adaptive_avg_pool2d(features.float(), grid)
    flat = F.normalize(pooled.flatten(2), dim=1, eps=1e-8)  # (N, F, h*w), unit columns
    return flat.transpose(1, 2) @ flat


def feature_similarity_loss(
    student_features: torch.Tensor, teacher_features: torch.Tensor, max_locations: int = 768
) -> torch.Tensor:
    """``L_fs``: mean squared difference of the student's and teacher's similarity matrices.

    Channel counts may differ (only spatial similarities are compared). Both maps are pooled
    to the grid of the smaller one, capped at ``max_locations`` cells (see module docstring).
    """
    if student_features.shape[0] != teacher_features.shape[0]:
        raise ValueError(
            f"feature distillation: batch sizes differ, {student_features.shape[0]} vs "
            f"{teacher_features.shape[0]}"
        )
    height = min(student_features.shape[-2], teacher_features.shape[-2])
    width = min(student_features.shape[-1], teacher_features.shape[-1])
    grid = similarity_grid(height, width, max_locations)
    s_student = similarity_matrix(student_features, grid)
    s_teacher = similarity_matrix(teacher_features.detach(), grid)
    return F.mse_loss(s_student, s_teacher)


def total_loss(
    student: dict[str, torch.Tensor],
    belief: torch.Tensor,
    vectors: torch.Tensor,
    teacher: dict[str, torch.Tensor] | None = None,
    weights: LossWeights | None = None,
    *,
    offset_alternatives: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_gt + size_weight * L_size + identity_weight * L_id + alpha * L_out + beta * L_fs``;
    without a teacher, no ``L_out`` / ``L_fs``; ``L_size`` (``offset_size_loss``) only for
    ``corner_offsets``. ``offset_alternatives``: see ``offset_loss``.

    A term whose weight is 0 is not computed. Returns the total and a dict of the detached
    terms (``gt``, ``size``, ``id``, ``out``, ``fs``, ``total``) for logging.
    """
    weights = weights or LossWeights()
    loss_gt = target_loss(
        student,
        belief,
        vectors,
        weights.peak_weight,
        vector_field=weights.vector_field,
        offset_weight=weights.offset_weight,
        offset_alternatives=offset_alternatives,
    )
    total = loss_gt
    parts = {"gt": float(loss_gt.detach())}
    if weights.size_weight != 0.0 and weights.vector_field == CORNER_OFFSETS:
        loss_size = offset_size_loss(student["vectors"], vectors, offset_alternatives)
        total = total + weights.size_weight * loss_size
        parts["size"] = float(loss_size.detach())
    if weights.identity_weight != 0.0:
        loss_id = corner_identity_loss(student["belief"], belief, temperature=weights.identity_temperature)
        total = total + weights.identity_weight * loss_id
        parts["id"] = float(loss_id.detach())
    if teacher is not None and weights.alpha != 0.0:
        loss_out = output_distillation_loss(student, teacher)
        total = total + weights.alpha * loss_out
        parts["out"] = float(loss_out.detach())
    if teacher is not None and weights.beta != 0.0:
        loss_fs = feature_similarity_loss(student["features"], teacher["features"], weights.max_locations)
        total = total + weights.beta * loss_fs
        parts["fs"] = float(loss_fs.detach())
    parts["total"] = float(total.detach())
    return total, parts

"""Scoring one image: pair detections with ground truth, then measure each pair's errors.

Each ground-truth instance is matched to the detection of its class whose projected
centroid is nearest; an unmatched instance counts as a failure (inf errors). Shared by
``evaluation.runner.evaluate`` and ``hrpose-demo`` so both score poses the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hrpose_ros.data.bop import BopImage
from hrpose_ros.evaluation.results import InstanceResult
from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.keypoints import Keypoint
from hrpose_ros.geometry.metrics import (
    at_true_depth,
    depth_error,
    pose_error_add_or_adds,
    proj,
    rotation_error_deg,
    translation_error,
)
from hrpose_ros.geometry.objects import Catalogue
from hrpose_ros.runtime.estimator import Detection

__all__ = ["match_detections", "score_instance"]


def _centroid_px(det: Detection) -> np.ndarray:
    return det.keypoints_2d[Keypoint.CENTROID]


def match_detections(
    detections: Sequence[Detection], image: BopImage, catalogue: Catalogue
) -> list[tuple[int, Any, Detection | None]]:
    """Pair each ground-truth instance of a catalogue object with at most one detection.

    Greedy per class: the pair with the nearest projected centroid (pixels) first. Returns
    ``(class_index, gt_instance, detection or None)`` per ground-truth instance.
    """
    ids = {o.id: i for i, o in enumerate(catalogue)}
    gts = [(ids[g.obj_id], g) for g in image.instances if g.obj_id in ids]
    pairs: list[tuple[float, int, int]] = []
    for gi, (c, gt) in enumerate(gts):
        centre = catalogue[c].keypoints[Keypoint.CENTROID][None]
        gt_px = project_points(centre, gt.R, gt.t, image.K)[0]
        for di, det in enumerate(detections):
            if det.class_index == c:
                d = float(np.linalg.norm(_centroid_px(det) - gt_px))
                pairs.append((d if np.isfinite(d) else np.inf, gi, di))
    chosen: dict[int, int] = {}
    used: set[int] = set()
    for _, gi, di in sorted(pairs):
        if gi not in chosen and di not in used:
            chosen[gi] = di
            used.add(di)
    return [(c, gt, detections[chosen[gi]] if gi in chosen else None) for gi, (c, gt) in enumerate(gts)]


def score_instance(
    c: int, gt: Any, det: Detection | None, K: np.ndarray, *, catalogue: Catalogue, points: list[np.ndarray]
) -> InstanceResult:
    """Errors of one ground-truth instance against its matched detection (inf when missed).

    Shared by ``evaluate`` and the demo so both score poses the same way.
    """
    if det is None:
        return InstanceResult(c, np.inf, np.inf, np.inf, np.inf)
    obj = catalogue[c]
    err = pose_error_add_or_adds(det.R, det.t, gt.R, gt.t, points[c], obj.symmetric)
    err_true_depth = (  # a pose behind the camera has no ray to slide along
        pose_error_add_or_adds(det.R, at_true_depth(det.t, gt.t), gt.R, gt.t, points[c], obj.symmetric)
        if det.t[2] > 0
        else np.inf
    )
    return InstanceResult(
        c,
        err / obj.diameter,
        proj(det.R, det.t, gt.R, gt.t, K, points[c]),
        rotation_error_deg(det.R, gt.R),
        translation_error(det.t, gt.t),
        depth_error(det.t, gt.t),
        err_true_depth / obj.diameter,
    )

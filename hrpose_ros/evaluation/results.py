"""What an evaluation measures, and how it is summarised: the paper's protocol.

Errors come from ``geometry.metrics``: ADD (ADD-S for symmetric objects) passes below
``ADD_FRACTION`` of the object diameter, 2D projection below ``PROJ_THRESHOLD_PX``. One
``InstanceResult`` per ground-truth instance (inf errors when it was not detected);
``summarise`` turns them into per-object accuracies and their average (``EvalResult``,
whose ``to_dict`` is ``eval.json``); ``accuracy_curves`` gives accuracy against threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hrpose_ros.geometry.objects import Catalogue

__all__ = [
    "ADD_FRACTION",
    "PROJ_THRESHOLD_PX",
    "EvalResult",
    "InstanceResult",
    "ObjectResult",
    "accuracy_curves",
    "summarise",
]

ADD_FRACTION = 0.1
"""ADD(-S) passes below this fraction of the object diameter (the paper's protocol)."""
PROJ_THRESHOLD_PX = 5.0
"""2D projection passes below this mean reprojection error, pixels."""
_ADD_CURVE = np.linspace(0.0, 0.3, 61)
_PROJ_CURVE_PX = np.linspace(0.0, 30.0, 61)
_DEPTH_CURVE_PCT = np.linspace(0.0, 20.0, 41)


@dataclass(frozen=True)
class InstanceResult:
    """Errors of one ground-truth instance (inf when it was not detected)."""

    class_index: int
    add_rel: float
    """ADD (ADD-S for symmetric objects) divided by the object diameter."""
    proj_px: float
    rot_deg: float
    trans_m: float
    depth_rel: float = float("nan")
    """Signed relative depth error ``z_est / z_gt - 1`` (nan when it was not detected)."""
    add_rel_true_depth: float = float("inf")
    """``add_rel`` with the estimate moved along its ray to the true depth (a diagnostic)."""


@dataclass(frozen=True)
class ObjectResult:
    """Accuracy of one object class, in percent; mean errors over its detected instances."""

    name: str
    instances: int
    detected: int
    add_accuracy: float
    proj_accuracy: float
    mean_rot_deg: float
    mean_trans_m: float
    symmetric: bool
    median_depth_err_pct: float = float("nan")
    """Median ``|z_est / z_gt - 1|`` over detected instances, percent."""
    add_accuracy_true_depth: float = float("nan")
    """ADD(-S) accuracy with every estimate moved along its ray to the true depth (diagnostic)."""


@dataclass
class EvalResult:
    """What ``evaluate`` measures; ``to_dict`` is what ``eval.json`` holds."""

    objects: list[ObjectResult]
    average: dict[str, float]
    images: int
    instances: list[InstanceResult] = field(repr=False)
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "model": self.model,
            "thresholds": {"add_fraction": ADD_FRACTION, "proj_px": PROJ_THRESHOLD_PX},
            "average": self.average,
            "objects": [asdict(o) for o in self.objects],
            "curves": accuracy_curves(self.instances, len(self.objects), [o.name for o in self.objects]),
        }


def _mean_finite(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _median_abs_pct(values: list[float]) -> float:
    finite = [abs(v) for v in values if np.isfinite(v)]
    return 100.0 * float(np.median(finite)) if finite else float("nan")


def _percent_below(values: list[float], threshold: float) -> float:
    return 100.0 * sum(v < threshold for v in values) / len(values) if values else float("nan")


def summarise(
    results: Sequence[InstanceResult],
    catalogue: Catalogue,
    images: int,
    model_info: dict[str, Any] | None = None,
) -> EvalResult:
    """Per-object accuracies (percent) and mean errors, plus their average over objects present."""
    objects = []
    for c, obj in enumerate(catalogue):
        mine = [r for r in results if r.class_index == c]
        n = len(mine)
        objects.append(
            ObjectResult(
                name=obj.name,
                instances=n,
                detected=sum(np.isfinite(r.add_rel) for r in mine),
                add_accuracy=_percent_below([r.add_rel for r in mine], ADD_FRACTION),
                proj_accuracy=_percent_below([r.proj_px for r in mine], PROJ_THRESHOLD_PX),
                mean_rot_deg=_mean_finite([r.rot_deg for r in mine]),
                mean_trans_m=_mean_finite([r.trans_m for r in mine]),
                symmetric=obj.symmetric,
                median_depth_err_pct=_median_abs_pct([r.depth_rel for r in mine]),
                add_accuracy_true_depth=_percent_below([r.add_rel_true_depth for r in mine], ADD_FRACTION),
            )
        )
    present = [o for o in objects if o.instances]
    average = {
        key: _mean_finite([getattr(o, key) for o in present])
        for key in (
            "add_accuracy",
            "proj_accuracy",
            "mean_rot_deg",
            "mean_trans_m",
            "median_depth_err_pct",
            "add_accuracy_true_depth",
        )
    }
    return EvalResult(objects, average, images, list(results), dict(model_info or {}))


def accuracy_curves(results: Sequence[InstanceResult], num_classes: int, names: list[str]) -> dict[str, Any]:
    """Accuracy (percent) vs threshold, per object and averaged: for the JSON and the plot.

    Besides ADD(-S) and 2D projection, the share of instances whose depth is within a
    threshold (percent of the true depth), the error that limits a monocular estimate.
    """
    out: dict[str, Any] = {
        "add_fraction": _ADD_CURVE.tolist(),
        "proj_px": _PROJ_CURVE_PX.tolist(),
        "depth_pct": _DEPTH_CURVE_PCT.tolist(),
        "objects": {},
    }
    for c in range(num_classes):
        add = np.array([r.add_rel for r in results if r.class_index == c])
        pr = np.array([r.proj_px for r in results if r.class_index == c])
        # |depth error| in percent; a missed instance (nan) is below no threshold
        depth = np.array([abs(r.depth_rel) * 100.0 for r in results if r.class_index == c])
        if add.size:
            with np.errstate(invalid="ignore"):
                out["objects"][names[c]] = {
                    "add": [100.0 * float(np.mean(add < t)) for t in _ADD_CURVE],
                    "proj": [100.0 * float(np.mean(pr < t)) for t in _PROJ_CURVE_PX],
                    "depth": [100.0 * float(np.mean(depth < t)) for t in _DEPTH_CURVE_PCT],
                }
    if out["objects"]:
        for key in ("add", "proj", "depth"):
            out[f"mean_{key}"] = np.mean([v[key] for v in out["objects"].values()], axis=0).tolist()
    return out

"""``hrpose-eval``: the paper's accuracy tables for a checkpoint or a model bundle on a BOP folder.

Usage::

    hrpose-eval --checkpoint runs/student/last.pt --data data/synthetic/test --out runs/eval_student
    hrpose-eval --bundle models/hrpose_lmo.json --data /data/lmo/test --backend onnxruntime

Every image goes through the runtime's ``Estimator`` (letterbox preprocessing -> network ->
geometry-core decode -> PnP with the image's intrinsics), the same code the ROS node runs;
a torch checkpoint is wrapped in the runtime's torch backend, an ONNX bundle in the chosen
backend. Errors come from ``geometry.metrics``: ADD (ADD-S for symmetric objects) passes
below 10% of the diameter, 2D projection below 5 px. Each ground-truth instance is matched
to the detection of its class whose projected centroid is nearest; an unmatched instance
counts as a failure. Prints per-object tables, writes ``eval.json`` and ``accuracy.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrpose_ros.data.bop import BopImage, read_dataset
from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.decode import DecodeParams
from hrpose_ros.geometry.keypoints import Keypoint
from hrpose_ros.geometry.metrics import (
    pose_error_add_or_adds,
    proj,
    rotation_error_deg,
    translation_error,
)
from hrpose_ros.geometry.objects import Catalogue, load_catalogue
from hrpose_ros.runtime.bundle import ModelBundle, check_against_catalogue, load_bundle
from hrpose_ros.runtime.estimator import Detection, Estimator

__all__ = [
    "ADD_FRACTION",
    "PROJ_THRESHOLD_PX",
    "EvalError",
    "EvalResult",
    "InstanceResult",
    "ObjectResult",
    "bundle_for_checkpoint",
    "estimator_for_bundle",
    "estimator_for_checkpoint",
    "evaluate",
    "format_tables",
    "main",
    "match_detections",
    "model_cost",
    "plot_accuracy",
    "score_instance",
    "summarise",
]

_log = logging.getLogger(__name__)

ADD_FRACTION = 0.1
"""ADD(-S) passes below this fraction of the object diameter (the paper's protocol)."""
PROJ_THRESHOLD_PX = 5.0
"""2D projection passes below this mean reprojection error, pixels."""
_ADD_CURVE = np.linspace(0.0, 0.3, 61)
_PROJ_CURVE_PX = np.linspace(0.0, 30.0, 61)


class EvalError(ValueError):
    """Bad evaluation input: no model, no images, or classes that do not match."""


@dataclass(frozen=True)
class InstanceResult:
    """Errors of one ground-truth instance (inf when it was not detected)."""

    class_index: int
    add_rel: float
    """ADD (ADD-S for symmetric objects) divided by the object diameter."""
    proj_px: float
    rot_deg: float
    trans_m: float


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
            "curves": _curves(self.instances, len(self.objects), [o.name for o in self.objects]),
        }


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
    return InstanceResult(
        c,
        err / obj.diameter,
        proj(det.R, det.t, gt.R, gt.t, K, points[c]),
        rotation_error_deg(det.R, gt.R),
        translation_error(det.t, gt.t),
    )


def evaluate(
    estimator: Estimator,
    images: Sequence[BopImage],
    catalogue: Catalogue,
    model_info: dict[str, Any] | None = None,
    progress: bool = True,
) -> EvalResult:
    """Run ``estimator`` on every image and score each ground-truth instance.

    Args:
        estimator: the runtime pipeline; its classes must be ``catalogue``'s, in order.
        images: annotated BOP images (``data.bop.read_dataset``).
        catalogue: object classes with diameters, symmetry flags and model points.
        model_info: copied into the result (variant, params, FLOPs, ...).
    """
    from tqdm import tqdm  # noqa: PLC0415

    if list(estimator.bundle.classes) != catalogue.names:
        raise EvalError(
            f"model classes {list(estimator.bundle.classes)} differ from catalogue {catalogue.names}"
        )
    if not images:
        raise EvalError("no images to evaluate")
    points = [o.model_points() for o in catalogue]
    results: list[InstanceResult] = []
    for image in tqdm(images, desc="evaluate", disable=not progress, dynamic_ncols=True):
        bgr = cv2.imread(str(image.rgb_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise EvalError(f"cannot read image {image.rgb_path}")
        detections = estimator(bgr, image.K, encoding="bgr8")
        for c, gt, det in match_detections(detections, image, catalogue):
            results.append(score_instance(c, gt, det, image.K, catalogue=catalogue, points=points))
    return summarise(results, catalogue, len(images), model_info)


def _mean_finite(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


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
                add_accuracy=100.0 * sum(r.add_rel < ADD_FRACTION for r in mine) / n if n else float("nan"),
                proj_accuracy=100.0 * sum(r.proj_px < PROJ_THRESHOLD_PX for r in mine) / n
                if n
                else float("nan"),
                mean_rot_deg=_mean_finite([r.rot_deg for r in mine]),
                mean_trans_m=_mean_finite([r.trans_m for r in mine]),
                symmetric=obj.symmetric,
            )
        )
    present = [o for o in objects if o.instances]
    average = {
        key: _mean_finite([getattr(o, key) for o in present])
        for key in ("add_accuracy", "proj_accuracy", "mean_rot_deg", "mean_trans_m")
    }
    return EvalResult(objects, average, images, list(results), dict(model_info or {}))


def _curves(results: Sequence[InstanceResult], num_classes: int, names: list[str]) -> dict[str, Any]:
    """Accuracy (percent) vs threshold, per object and averaged: for the JSON and the plot."""
    out: dict[str, Any] = {
        "add_fraction": _ADD_CURVE.tolist(),
        "proj_px": _PROJ_CURVE_PX.tolist(),
        "objects": {},
    }
    for c in range(num_classes):
        add = np.array([r.add_rel for r in results if r.class_index == c])
        pr = np.array([r.proj_px for r in results if r.class_index == c])
        if add.size:
            out["objects"][names[c]] = {
                "add": [100.0 * float(np.mean(add < t)) for t in _ADD_CURVE],
                "proj": [100.0 * float(np.mean(pr < t)) for t in _PROJ_CURVE_PX],
            }
    if out["objects"]:
        for key in ("add", "proj"):
            out[f"mean_{key}"] = np.mean([v[key] for v in out["objects"].values()], axis=0).tolist()
    return out


def plot_accuracy(result: EvalResult, path: str | Path) -> Path:
    """PNG with ADD(-S) accuracy vs threshold (fraction of diameter) and 2D-projection accuracy vs px."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    curves = _curves(result.instances, len(result.objects), [o.name for o in result.objects])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, xs, xlabel, mark in (
        (axes[0], "add", curves["add_fraction"], "ADD(-S) threshold / diameter", ADD_FRACTION),
        (axes[1], "proj", curves["proj_px"], "2D projection threshold [px]", PROJ_THRESHOLD_PX),
    ):
        for name, obj in curves["objects"].items():
            ax.plot(xs, obj[key], lw=1, label=name)
        if f"mean_{key}" in curves:
            ax.plot(xs, curves[f"mean_{key}"], "k", lw=2.5, label="mean")
        ax.axvline(mark, color="grey", ls="--", lw=1)
        ax.set(xlabel=xlabel, ylabel="accuracy [%]", ylim=(0, 100), xlim=(xs[0], xs[-1]))
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def model_cost(variant: str, num_classes: int, input_size: tuple[int, int]) -> dict[str, float]:
    """Parameters and FLOPs (torch's FlopCounterMode, one multiply-add = 2 FLOPs) at (W, H),
    and the share of the FLOPs outside the backbone (fusion + regressor): where a light
    backbone's time goes when the head is too wide."""
    import torch  # noqa: PLC0415
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    from hrpose_ros.network.model import count_parameters, create_model  # noqa: PLC0415

    model = create_model(variant, num_classes).eval()
    width, height = input_size
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, height, width))
    total = counter.get_total_flops()
    backbone = sum(counter.get_flop_counts().get(f"{type(model).__name__}.backbone", {}).values())
    return {
        "params_m": count_parameters(model) / 1e6,
        "gflops": total / 1e9,
        "head_flops_share": 1.0 - backbone / total if total else 0.0,
        "input_size": [int(width), int(height)],
    }


def bundle_for_checkpoint(path: str | Path, info: dict[str, Any], catalogue: Catalogue) -> ModelBundle:
    """An in-memory bundle describing a training checkpoint (no ONNX file), for the Estimator."""
    from hrpose_ros.network.model import OUTPUT_STRIDE  # noqa: PLC0415

    path = Path(path)
    if list(info.get("classes", catalogue.names)) != catalogue.names:
        raise EvalError(f"checkpoint classes {info.get('classes')} differ from catalogue {catalogue.names}")
    return ModelBundle(
        onnx_path=path,
        metadata_path=path.with_suffix(".json"),
        classes=tuple(catalogue.names),
        object_ids=tuple(int(o.id) for o in catalogue),
        input_size=tuple(int(v) for v in info["input_size"]),
        mean=tuple(info["mean"]),
        std=tuple(info["std"]),
        stride=OUTPUT_STRIDE,
        keypoints_3d=catalogue.keypoints_3d(),
        diameters=np.array([o.diameter for o in catalogue]),
        symmetric=tuple(bool(o.symmetric) for o in catalogue),
        model_name=info["variant"],
        training={"checkpoint": str(path)},
    )


def estimator_for_checkpoint(
    path: str | Path,
    catalogue: Catalogue,
    device: str = "auto",
    decode_params: DecodeParams | None = None,
    input_size: tuple[int, int] | None = None,
) -> tuple[Estimator, dict[str, Any]]:
    """Estimator over a torch checkpoint, through the runtime's torch backend."""
    from hrpose_ros.network.checkpoint import model_from_checkpoint  # noqa: PLC0415
    from hrpose_ros.runtime.backends.torch_backend import TorchBackend  # noqa: PLC0415

    model, info = model_from_checkpoint(path)
    if input_size is not None:
        info["input_size"] = list(input_size)
    bundle = bundle_for_checkpoint(path, info, catalogue)
    backend = TorchBackend(bundle, model=model, device=device, fp16=False, cuda_graphs=False)
    return Estimator(bundle, backend, decode_params), info


def estimator_for_bundle(
    path: str | Path,
    catalogue: Catalogue,
    backend: str = "onnxruntime",
    decode_params: DecodeParams | None = None,
) -> tuple[Estimator, dict[str, Any]]:
    """Estimator over an exported bundle (ONNX + JSON), with the named runtime backend."""
    from hrpose_ros.runtime.backends import create_backend  # noqa: PLC0415

    bundle = load_bundle(path)
    check_against_catalogue(bundle, catalogue)
    info = {
        "variant": bundle.model_name,
        "num_classes": bundle.num_classes,
        "input_size": list(bundle.input_size),
        "bundle": str(bundle.metadata_path),
        "backend": backend,
    }
    return Estimator(bundle, create_backend(backend, bundle), decode_params), info


def format_tables(result: EvalResult) -> str:
    """Markdown tables: per-object ADD(-S) and 2D projection accuracy, mean errors, and the model."""
    lines = [
        "| object | ADD(-S) % | 2D proj % | rot err [deg] | trans err [mm] | detected / instances |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for o in result.objects:
        if not o.instances:
            continue
        name = f"{o.name}*" if o.symmetric else o.name
        lines.append(
            f"| {name} | {o.add_accuracy:.2f} | {o.proj_accuracy:.2f} | {o.mean_rot_deg:.2f} | "
            f"{1000 * o.mean_trans_m:.1f} | {o.detected} / {o.instances} |"
        )
    a = result.average
    lines.append(
        f"| **average** | **{a['add_accuracy']:.2f}** | **{a['proj_accuracy']:.2f}** | "
        f"{a['mean_rot_deg']:.2f} | {1000 * a['mean_trans_m']:.1f} | |"
    )
    lines.append("")
    lines.append(
        f"(* ADD-S for symmetric objects; {result.images} images; ADD(-S) < {ADD_FRACTION:g} x diameter, "
        f"2D projection < {PROJ_THRESHOLD_PX:g} px)"
    )
    m = result.model
    if "params_m" in m:
        lines.append(
            f"model {m.get('variant')}: {m['params_m']:.2f}M parameters, {m['gflops']:.2f} GFLOPs at "
            f"{m['input_size'][0]}x{m['input_size'][1]} (FlopCounterMode, multiply-add = 2 FLOPs), "
            f"{100 * m.get('head_flops_share', float('nan')):.0f} % of them in fusion + regressor"
        )
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hrpose-eval", description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="training checkpoint (runs/.../last.pt)")
    src.add_argument("--bundle", help="exported model bundle (NAME.json or NAME.onnx)")
    parser.add_argument("--data", required=True, help="BOP folder (dataset, split or scene)")
    parser.add_argument("--objects", default="config/objects.yaml", help="object catalogue YAML")
    parser.add_argument("--mesh-dir", help="folder of the catalogue's meshes")
    parser.add_argument("--out", default="runs/eval", help="folder for eval.json and accuracy.png")
    parser.add_argument("--backend", default="onnxruntime", help="runtime backend for --bundle")
    parser.add_argument("--device", default="auto", help="torch device for --checkpoint")
    parser.add_argument("--limit", type=int, default=0, help="evaluate at most this many images")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: prints the tables, writes eval.json and accuracy.png; exit status 1 on errors."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        catalogue = load_catalogue(args.objects, args.mesh_dir)
        if args.threads:
            import torch  # noqa: PLC0415

            torch.set_num_threads(args.threads)
        if args.checkpoint:
            estimator, info = estimator_for_checkpoint(args.checkpoint, catalogue, args.device)
        else:
            estimator, info = estimator_for_bundle(
                args.bundle, catalogue.select(load_bundle(args.bundle).classes), args.backend
            )
            catalogue = catalogue.select(estimator.bundle.classes)
        if info.get("variant"):
            info.update(model_cost(info["variant"], len(catalogue), tuple(info["input_size"])))
        images = read_dataset(args.data)[: args.limit or None]
        result = evaluate(estimator, images, catalogue, info)
    except (ValueError, FileNotFoundError) as exc:
        print(f"hrpose-eval: error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result.to_dict(), indent=2, default=float) + "\n")
    plot_accuracy(result, out / "accuracy.png")
    print(format_tables(result))
    print(f"wrote {out / 'eval.json'} and {out / 'accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Running an ``Estimator`` over annotated BOP images and scoring every instance.

Every image goes through the runtime's ``Estimator`` (letterbox preprocessing -> network ->
geometry-core decode -> PnP with the image's intrinsics), the same code the ROS node runs.
``estimator_for_bundle`` builds one over an exported bundle with any runtime backend;
``training.evaluate`` adds the one over a torch checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from hrpose_ros.data.bop import BopImage
from hrpose_ros.evaluation.results import EvalResult, InstanceResult, summarise
from hrpose_ros.evaluation.scoring import match_detections, score_instance
from hrpose_ros.geometry.decode import DecodeParams
from hrpose_ros.geometry.objects import Catalogue
from hrpose_ros.runtime.bundle import check_against_catalogue, load_bundle
from hrpose_ros.runtime.estimator import Estimator

__all__ = ["EvalError", "estimator_for_bundle", "evaluate"]


class EvalError(ValueError):
    """Bad evaluation input: no model, no images, or classes that do not match."""


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

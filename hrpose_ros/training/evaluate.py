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

The torch-free part (matching, scoring, summaries, tables, plot, the bundle estimator) is
``hrpose_ros.evaluation``, which the demo uses too; this module adds the command line and
what needs torch: the estimator over a checkpoint and the parameter / FLOPs count.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hrpose_ros.data.bop import read_dataset
from hrpose_ros.evaluation.report import format_tables, plot_accuracy
from hrpose_ros.evaluation.runner import EvalError, estimator_for_bundle, evaluate
from hrpose_ros.geometry.decode import DecodeParams
from hrpose_ros.geometry.objects import Catalogue, load_catalogue
from hrpose_ros.geometry.targets import DEFAULT_OFFSET_SCALE, TO_CENTROID
from hrpose_ros.runtime.bundle import ModelBundle, load_bundle
from hrpose_ros.runtime.estimator import Estimator

__all__ = ["bundle_for_checkpoint", "estimator_for_checkpoint", "main", "model_cost"]


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
        vector_field=info.get("vector_field", TO_CENTROID),
        offset_scale=float(info.get("offset_scale", DEFAULT_OFFSET_SCALE)),
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

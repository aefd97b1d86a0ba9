"""``hrpose-export``: training checkpoint -> model bundle (ONNX + FP16 ONNX + metadata JSON).

The bundle is what deployment loads (``hrpose_ros.runtime.bundle``): ``NAME.onnx`` with
the named input ``image`` (N×3×H×W float32, fixed H×W) and outputs ``belief`` and
``vectors``; ``NAME.fp16.onnx`` (FP16 weights, FP32 I/O) for TensorRT 11 strongly typed
builds; ``NAME.json`` with classes, keypoint order, input size, normalisation, stride,
3D keypoints, diameters and the ONNX files' SHA-256. After writing, the ONNX Runtime
outputs are checked against PyTorch's on random input.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrpose_ros.geometry.keypoints import keypoint_names
from hrpose_ros.geometry.objects import Catalogue, load_catalogue
from hrpose_ros.geometry.targets import DEFAULT_OFFSET_SCALE, TO_CENTROID
from hrpose_ros.network.checkpoint import load_checkpoint, model_from_checkpoint
from hrpose_ros.network.model import OUTPUT_STRIDE
from hrpose_ros.network.normalization import IMAGENET_MEAN, IMAGENET_STD
from hrpose_ros.runtime.bundle import (
    BundleError,
    ModelBundle,
    check_against_catalogue,
    parse_decode_settings,
    save_bundle_metadata,
    sha256_file,
)
from hrpose_ros.training.config import ConfigError, parse_override

__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "compare_with_torch",
    "export_bundle",
    "main",
    "max_relative_error",
]

_LOG = logging.getLogger(__name__)

DEFAULT_OPSET = 17
"""ONNX opset of the exported graph (TensorRT 10/11 and ONNX Runtime support it)."""

_FP32_TOLERANCE = 1e-3


class ExportError(ValueError):
    """Bad export arguments, or an exported graph that does not reproduce PyTorch."""


class _OutputPair(nn.Module):
    """Expose the model's dict output as the two named ONNX outputs (drops ``features``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(image)
        return out["belief"], out["vectors"]


def max_relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual − expected| / max |expected| (relative to the output's range, not per element)."""
    scale = float(np.max(np.abs(expected)))
    return float(np.max(np.abs(actual - expected))) / max(scale, 1e-12)


def _torch_outputs(model: nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
    return out["belief"].numpy(), out["vectors"].numpy()


def compare_with_torch(
    model: nn.Module,
    bundle: ModelBundle,
    onnx_path: Path | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, float]:
    """Max relative error of ONNX Runtime vs PyTorch per output, on seeded random input."""
    from hrpose_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 3, bundle.input_height, bundle.input_width)).astype(np.float32)
    expected = _torch_outputs(model.eval(), x)
    backend = OnnxRuntimeBackend(bundle, threads=threads, device="cpu", onnx_path=onnx_path)
    actual = backend.infer(x)
    return {
        name: max_relative_error(a, e)
        for name, a, e in zip(bundle.output_names, actual, expected, strict=True)
    }


def _export_onnx(
    model: nn.Module, path: Path, input_size: tuple[int, int], opset: int, dynamic_batch: bool
) -> None:
    width, height = input_size
    dummy = torch.zeros(1, 3, height, width)
    axes = {"image": {0: "batch"}, "belief": {0: "batch"}, "vectors": {0: "batch"}} if dynamic_batch else None
    # the TorchScript exporter folds BatchNorm into the convolutions IN PLACE (shared
    # parameter storage), which would silently change the caller's model: export a copy
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            _OutputPair(copy.deepcopy(model).eval()),
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["belief", "vectors"],
            opset_version=opset,
            dynamic_axes=axes,
            do_constant_folding=True,
            dynamo=False,
        )


def _simplify(path: Path) -> None:
    """Graph simplification with onnxslim (constant folding, fusions), in place."""
    import onnxslim  # noqa: PLC0415 (optional step)

    onnxslim.slim(str(path), str(path))


def _write_fp16(src: Path, dst: Path) -> None:
    """FP16 weights and compute, FP32 I/O (TensorRT 11 builds it strongly typed)."""
    import onnx  # noqa: PLC0415
    from onnxconverter_common import float16  # noqa: PLC0415

    with warnings.catch_warnings():  # tiny weights truncated to 1e-7: expected, not news
        warnings.simplefilter("ignore", UserWarning)
        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def export_bundle(
    model: nn.Module,
    catalogue: Catalogue,
    out: str | Path,
    *,
    input_size: tuple[int, int] = (640, 480),
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    fp16: bool = True,
    simplify: bool = False,
    verify: bool = True,
    model_name: str | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    vector_field: str = TO_CENTROID,
    offset_scale: float = DEFAULT_OFFSET_SCALE,
    decode: dict[str, Any] | None = None,
) -> ModelBundle:
    """Export ``model`` as the bundle ``out`` (``out.onnx``, ``out.fp16.onnx``, ``out.json``).

    Args:
        model: network whose forward returns a dict with ``belief``/``vectors``.
        catalogue: the objects the model was trained on, in class (channel) order.
        out: bundle path without suffix (``models/hrpose_student``).
        input_size: fixed network input (W, H), multiples of 32.
        opset: ONNX opset (>= 17).
        dynamic_batch: make the batch dimension dynamic.
        fp16: also write the FP16 ONNX file.
        simplify: run onnxslim on the FP32 graph.
        verify: compare ONNX Runtime with PyTorch (max relative error < 1e-3).
        vector_field, offset_scale: what the ``vectors`` output holds, for the decoder
            (the training config's ``data.vector_field`` / ``data.offset_scale``).
        decode: decoder settings of this network (``DecodeParams`` field -> value), the
            runtime's and the node's defaults for it (``ModelBundle.decode``).

    Raises:
        ExportError: bad arguments, or verification failed.
    """
    width, height = (int(v) for v in input_size)
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise ExportError(f"input_size must be positive multiples of 32 (W, H), got {input_size}")
    if opset < DEFAULT_OPSET:
        raise ExportError(f"opset must be >= {DEFAULT_OPSET}, got {opset}")
    try:
        decode = parse_decode_settings(decode or {})
    except BundleError as exc:
        raise ExportError(str(exc)) from None
    out = Path(out)
    if out.suffix in (".onnx", ".json"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_path = out.with_name(out.name + ".onnx")
    fp16_path = out.with_name(out.name + ".fp16.onnx")
    model = model.eval().float().cpu()
    _LOG.info(
        "exporting %s at %dx%d (opset %d) to %s",
        model_name or type(model).__name__,
        width,
        height,
        opset,
        onnx_path,
    )
    _export_onnx(model, onnx_path, (width, height), opset, dynamic_batch)
    if simplify:
        _simplify(onnx_path)
    if fp16:
        _write_fp16(onnx_path, fp16_path)
    bundle = ModelBundle(
        onnx_path=onnx_path,
        metadata_path=out.with_name(out.name + ".json"),
        classes=tuple(catalogue.names),
        object_ids=tuple(int(o.id) for o in catalogue),
        input_size=(width, height),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        stride=OUTPUT_STRIDE,
        keypoints_3d=catalogue.keypoints_3d(),
        diameters=np.array([o.diameter for o in catalogue], dtype=np.float64),
        symmetric=tuple(bool(o.symmetric) for o in catalogue),
        keypoint_order=tuple(keypoint_names()),
        vector_field=vector_field,
        offset_scale=offset_scale,
        decode=decode,
        dynamic_batch=dynamic_batch,
        onnx_sha256=sha256_file(onnx_path),
        fp16_onnx_path=fp16_path if fp16 else None,
        fp16_onnx_sha256=sha256_file(fp16_path) if fp16 else None,
        model_name=model_name,
        training={
            **(training or {}),
            "exported_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "opset": opset,
            "torch": torch.__version__,
            "simplified": simplify,
        },
        metrics=dict(metrics or {}),
    )
    check_against_catalogue(bundle, catalogue)
    if verify:
        errors = compare_with_torch(model, bundle)
        _LOG.info("ONNX Runtime vs PyTorch max relative error: %s", errors)
        bad = {k: v for k, v in errors.items() if not v < _FP32_TOLERANCE}
        if bad:
            raise ExportError(f"exported graph {onnx_path} differs from PyTorch: max relative errors {bad}")
        bundle.metrics.setdefault("export_max_relative_error", errors)
        if fp16:  # informative only: FP16 rounding is expected, TensorRT is the consumer
            fp16_errors = compare_with_torch(model, bundle, onnx_path=fp16_path)
            _LOG.info("FP16 ONNX vs PyTorch FP32 max relative error: %s", fp16_errors)
            bundle.metrics.setdefault("export_fp16_max_relative_error", fp16_errors)
    save_bundle_metadata(bundle)
    return bundle


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hrpose-export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="training checkpoint (.pt)")
    parser.add_argument("--catalogue", default="config/objects.yaml", help="object catalogue YAML")
    parser.add_argument("--mesh-dir", default=None, help="mesh folder overriding the catalogue's")
    parser.add_argument("--out", required=True, help="bundle path without suffix, e.g. models/hrpose_student")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=None,
        help="network input size (default: the checkpoint's, else 640 480)",
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--dynamic-batch", action="store_true", help="dynamic batch dimension")
    parser.add_argument("--no-fp16", action="store_true", help="skip the FP16 ONNX file")
    parser.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim")
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    parser.add_argument(
        "--decode",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="decoder setting of this network, the runtime's and the node's default for it "
        "(a DecodeParams field, e.g. centroid_threshold=0.3); repeatable",
    )
    return parser


def _decode_settings(items: list[str]) -> dict[str, Any]:
    """``--decode FIELD=VALUE`` arguments as checked settings (values parsed as YAML numbers)."""
    settings: dict[str, Any] = {}
    for item in items:
        try:
            path, value = parse_override(item)
        except ConfigError as exc:
            raise ExportError(f"--decode {item!r}: {exc}") from None
        if len(path) != 1:
            raise ExportError(f"--decode {item!r}: expected FIELD=VALUE with a DecodeParams field")
        settings[path[0]] = value
    try:
        return parse_decode_settings(settings)
    except BundleError as exc:
        raise ExportError(f"--decode: {exc}") from None


def _export_checkpoint(args: argparse.Namespace) -> ModelBundle:
    """The CLI's work: checkpoint + catalogue -> bundle."""
    decode = _decode_settings(args.decode)  # a typo fails before the checkpoint loads
    model, info = model_from_checkpoint(args.checkpoint)
    state = load_checkpoint(args.checkpoint)
    catalogue = load_catalogue(args.catalogue, args.mesh_dir)
    trained_classes = info.get("classes")
    if trained_classes is not None and list(trained_classes) != catalogue.names:
        try:
            catalogue = catalogue.select(trained_classes)
        except KeyError as exc:
            raise ExportError(
                f"checkpoint {args.checkpoint} was trained on classes absent from {args.catalogue}: {exc}"
            ) from exc

    input_size = tuple(args.input_size or info.get("input_size") or (640, 480))
    training = {
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "epoch": state.get("epoch"),
        "global_step": state.get("global_step"),
        "config": state.get("config"),
    }
    bundle = export_bundle(
        model,
        catalogue,
        args.out,
        input_size=input_size,
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        fp16=not args.no_fp16,
        simplify=args.simplify,
        verify=not args.no_verify,
        model_name=info.get("variant"),
        training=training,
        metrics=state.get("metrics") or {},
        vector_field=info.get("vector_field", TO_CENTROID),
        offset_scale=float(info.get("offset_scale", DEFAULT_OFFSET_SCALE)),
        decode=decode,
    )
    return bundle


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 0, or 1 with a one-line reason for bad input."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        bundle = _export_checkpoint(args)
    except (ValueError, OSError) as exc:  # CheckpointError, CatalogueError, ExportError, BundleError
        _LOG.error("%s", exc)
        return 1
    print(
        f"wrote {bundle.onnx_path}, {bundle.metadata_path}"
        + (f", {bundle.fp16_onnx_path}" if bundle.fp16_onnx_path else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

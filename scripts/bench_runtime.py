#!/usr/bin/env python3
"""Benchmark the deployment runtime: per-stage latency and end-to-end frames/s.

Runs the real ``Estimator`` (preprocess -> backend -> decode -> PnP) on a 640×480
camera frame, batch 1, for each configuration in the cross product of
``--backends`` × ``--input-sizes`` × ``--graph-opt`` × ``--quantize`` (the last two
apply to ONNX Runtime only). Writes ``OUT.json`` and ``OUT.md`` (a markdown table).

Without ``--bundle``, a ``--model`` network with seeded random weights is exported
for each input size: inference latency does not depend on the weight values, and
decode/PnP run on the target maps of ``--scene-objects`` objects (a random network's
own outputs are noise, which would time decode/PnP on thousands of false peaks).

With ``--reference VARIANT@WxH`` each configuration runs interleaved, frame by frame, with
a seeded random-weight ONNX Runtime export of that variant at that input size (e.g. the
paper's student at 640x480), and the table gains the speed-up of the median frames/s
against it: a ratio measured in one run, under the same load.

Examples (the CPU numbers in docs/benchmarks/):
    .venv/bin/python scripts/bench_runtime.py --backends onnxruntime --threads 2 \\
        --input-sizes 640x480 512x384 320x256 --out docs/benchmarks/cpu_student
    .venv/bin/python scripts/bench_runtime.py --bundle models/hrpose_student.json --threads 2 \\
        --reference hrpose_student@640x480 --out docs/benchmarks/cpu_shipped
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from hrpose_ros.geometry.camera import intrinsics_matrix, project_points
from hrpose_ros.geometry.targets import belief_maps, vector_fields
from hrpose_ros.runtime.backends import Backend, create_backend
from hrpose_ros.runtime.bundle import ModelBundle, load_bundle
from hrpose_ros.runtime.estimator import STAGES, Estimator
from hrpose_ros.runtime.preprocess import Preprocessor

_LOG = logging.getLogger("bench_runtime")

FRAME_SIZE = (640, 480)
"""Camera frame (W, H) fed to the estimator; the network input size varies."""


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from exc
    return w, h


def make_frame(seed: int = 0) -> np.ndarray:
    """A seeded 640×480 BGR test frame: smooth noise plus a few filled shapes."""
    rng = np.random.default_rng(seed)
    w, h = FRAME_SIZE
    base = cv2.resize(rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8), (w, h))
    for _ in range(6):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        cv2.circle(base, centre, int(rng.integers(20, 90)), colour, -1)
    return base


def export_random_bundle(
    model_name: str, num_classes_from: str, size: tuple[int, int], work_dir: Path
) -> tuple[ModelBundle, Any]:
    """Export a seeded random-weight ``model_name`` at ``size``; returns the bundle and the torch model."""
    import torch  # noqa: PLC0415 (only for this mode)

    from hrpose_ros.geometry.objects import load_catalogue  # noqa: PLC0415
    from hrpose_ros.network.model import create_model  # noqa: PLC0415
    from hrpose_ros.training.export import export_bundle  # noqa: PLC0415

    catalogue = load_catalogue(num_classes_from)
    torch.manual_seed(0)
    model = create_model(model_name, len(catalogue))
    out = work_dir / f"{model_name}_{size[0]}x{size[1]}"
    bundle = export_bundle(
        model, catalogue, out, input_size=size, fp16=False, verify=False, model_name=model_name
    )
    return bundle, model


class SceneOutputs(Backend):
    """Runs the real backend (timed as inference), then returns the target maps of a scene.

    For random-weight networks: their outputs hold no objects, so decode/PnP would be
    timed on noise. The maps of ``num_objects`` objects made with the geometry core's
    target functions give decode and PnP a realistic workload.
    """

    name = "scene"

    def __init__(self, inner: Backend, K: np.ndarray, num_objects: int, seed: int = 0) -> None:
        super().__init__(inner.bundle)
        self.inner = inner
        bundle = inner.bundle
        rng = np.random.default_rng(seed)
        transform = Preprocessor(bundle.input_size, bundle.mean, bundle.std).transform_for(FRAME_SIZE)
        keypoints, classes = [], []
        for i in range(num_objects):
            c = i % bundle.num_classes
            angle = rng.uniform(-0.6, 0.6, 3)
            R = cv2.Rodrigues(angle)[0]
            t = np.array(
                [(i - (num_objects - 1) / 2) * 0.15, rng.uniform(-0.05, 0.05), rng.uniform(0.6, 0.9)]
            )
            image_xy = project_points(bundle.keypoints_3d[c], R, t, K)
            keypoints.append(transform.image_to_input(image_xy))
            classes.append(c)
        kp, cls = np.array(keypoints).reshape(-1, 9, 2), np.array(classes, dtype=np.int64)
        out_w, out_h = bundle.output_size
        self._maps = (
            belief_maps(kp, cls, bundle.num_classes, (out_h, out_w), bundle.stride)[None],
            vector_fields(kp, cls, bundle.num_classes, (out_h, out_w), bundle.stride)[None],
        )

    def infer(self, image_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.inner.infer(image_nchw)
        return self._maps

    def close(self) -> None:
        self.inner.close()


def quantize(bundle: ModelBundle, mode: str, work_dir: Path, frame: np.ndarray) -> Path:
    """INT8 copy of the bundle's ONNX: ``dynamic`` (weights only) or ``static`` (QDQ, calibrated)."""
    from onnxruntime.quantization import (  # noqa: PLC0415 (optional)
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    out = work_dir / f"{bundle.name}.int8_{mode}.onnx"
    if mode == "dynamic":
        quantize_dynamic(str(bundle.onnx_path), str(out), weight_type=QuantType.QUInt8)
        return out
    from hrpose_ros.runtime.preprocess import Preprocessor  # noqa: PLC0415

    pre = Preprocessor(bundle.input_size, bundle.mean, bundle.std)
    rng = np.random.default_rng(1)
    samples = []
    for i in range(8):  # calibration frames: the bench frame, shifted and brightened
        shifted = np.roll(make_frame(i), int(rng.integers(0, 200)), axis=1)
        samples.append({bundle.input_name: pre(cv2.convertScaleAbs(shifted, alpha=1.0 + 0.05 * i))[0].copy()})

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    prepared = work_dir / f"{bundle.name}.preprocessed.onnx"
    quant_pre_process(str(bundle.onnx_path), str(prepared))
    quantize_static(
        str(prepared),
        str(out),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def output_error_vs_fp32(bundle: ModelBundle, backend: Backend, frame: np.ndarray) -> dict[str, float]:
    """Max relative error (max |Δ| / max |FP32|) of a quantised backend's outputs on the bench frame."""
    inner = backend.inner if isinstance(backend, SceneOutputs) else backend
    x = Preprocessor(bundle.input_size, bundle.mean, bundle.std)(frame)[0]
    reference = create_backend("onnxruntime", bundle, threads=1, device="cpu").infer(x)
    got = inner.infer(x)
    return {
        name: float(np.max(np.abs(g - r)) / max(float(np.max(np.abs(r))), 1e-12))
        for name, g, r in zip(bundle.output_names, got, reference, strict=True)
    }


def summarise(timings: list[dict[str, float]]) -> dict[str, Any]:
    """Median and p99 per stage in milliseconds, plus frames/s from the median total."""
    stats: dict[str, Any] = {}
    for stage in STAGES:
        values = np.array([t[stage] for t in timings]) * 1000.0
        stats[stage] = {"median_ms": float(np.median(values)), "p99_ms": float(np.percentile(values, 99))}
    stats["fps_median"] = 1000.0 / stats["total"]["median_ms"]
    stats["fps_mean"] = 1000.0 * len(timings) / sum(t["total"] * 1000.0 for t in timings)
    return stats


def run_one(
    estimator: Estimator, frame: np.ndarray, K: np.ndarray, *, frames: int, warmup: int, label: str
) -> dict[str, Any]:
    """Time ``frames`` estimator calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        estimator(frame, K)
    timings, detections = [], 0
    load_before, cpu_before = os.getloadavg()[0], time.process_time()
    for _ in tqdm(range(frames), desc=label, leave=False):
        detections += len(estimator(frame, K))
        timings.append(dict(estimator.last_timings))
    cpu_ms = 1000.0 * (time.process_time() - cpu_before) / frames
    return {
        **summarise(timings),
        "frames": frames,
        "detections_per_frame": detections / frames,
        "cpu_ms_per_frame": cpu_ms,
        "load_average_1min": [load_before, os.getloadavg()[0]],
    }


def run_interleaved(
    estimators: dict[str, Estimator], frame: np.ndarray, K: np.ndarray, *, frames: int, warmup: int
) -> dict[str, dict[str, Any]]:
    """Time several estimators frame by frame in turn, so a change of machine load hits all
    of them alike; returns :func:`run_one`-style stats per label."""
    for _ in range(warmup):
        for estimator in estimators.values():
            estimator(frame, K)
    timings: dict[str, list[dict[str, float]]] = {label: [] for label in estimators}
    detections = dict.fromkeys(estimators, 0)
    cpu = dict.fromkeys(estimators, 0.0)
    load_before = os.getloadavg()[0]
    for _ in tqdm(range(frames), desc=" / ".join(estimators), leave=False):
        for label, estimator in estimators.items():
            start = time.process_time()
            detections[label] += len(estimator(frame, K))
            cpu[label] += time.process_time() - start
            timings[label].append(dict(estimator.last_timings))
    load_after = os.getloadavg()[0]
    return {
        label: {
            **summarise(timings[label]),
            "frames": frames,
            "detections_per_frame": detections[label] / frames,
            "cpu_ms_per_frame": 1000.0 * cpu[label] / frames,
            "load_average_1min": [load_before, load_after],
        }
        for label in estimators
    }


def parse_reference(text: str) -> tuple[str, tuple[int, int]]:
    """``"hrpose_student@640x480"`` -> ("hrpose_student", (640, 480))."""
    if "@" not in text:
        raise argparse.ArgumentTypeError(f"reference must look like hrpose_student@640x480, got {text!r}")
    name, size = text.split("@", 1)
    return name, parse_size(size)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One row per configuration: medians (p99) per stage in ms, frames/s, CPU time and load."""
    head = "| backend | input | graph opt | quant | preprocess | inference | decode | PnP | total | fps |"
    speedups = any("speedup_vs_reference" in r for r in rows)
    extra = " speed-up |" if speedups else ""
    lines = [head + " CPU ms/frame | load |" + extra, "|" + "---|" * (12 + speedups)]
    for r in rows:
        s = r["stats"]
        cells = [f"{s[k]['median_ms']:.1f} ({s[k]['p99_ms']:.1f})" for k in STAGES]
        ratio = (
            f" {r['speedup_vs_reference']:.1f}x |" if "speedup_vs_reference" in r else (" |" if extra else "")
        )
        lines.append(
            f"| {r['backend']} | {r['input_size']} | {r['graph_opt']} | {r['quantize']} | "
            + " | ".join(cells)
            + f" | {s['fps_median']:.2f} | {s['cpu_ms_per_frame']:.0f} | {s['load_average_1min'][0]:.1f} |"
            + ratio
        )
    note = (
        "Times in ms: median (p99). fps = 1000 / median total. Camera frame 640×480, batch 1. "
        "CPU ms/frame: process CPU time (all threads) per frame. load: 1-minute load average when the row "
        "started; the machine is shared, and a load above its core count inflates wall-clock times."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def _configs(args: argparse.Namespace) -> list[tuple[str, tuple[int, int] | None, str, str]]:
    sizes = args.input_sizes if args.bundle is None else [None]
    out = []
    for backend in args.backends:
        for size in sizes:
            for opt in args.graph_opt if backend == "onnxruntime" else ["-"]:
                for quant in args.quantize if backend == "onnxruntime" else ["none"]:
                    out.append((backend, size, opt, quant))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bundle", default=None, help="model bundle to benchmark (default: export random weights)"
    )
    parser.add_argument("--checkpoint", default=None, help="checkpoint for the torch backend with --bundle")
    parser.add_argument(
        "--model", default="hrpose_student", help="variant exported when no --bundle is given"
    )
    parser.add_argument(
        "--catalogue", default="config/objects.yaml", help="classes for the random-weight export"
    )
    parser.add_argument(
        "--backends", nargs="+", default=["onnxruntime"], choices=["onnxruntime", "torch", "tensorrt"]
    )
    parser.add_argument("--input-sizes", nargs="+", type=parse_size, default=[(640, 480)], help="network W×H")
    parser.add_argument(
        "--graph-opt", nargs="+", default=["all"], choices=["disable", "basic", "extended", "all"]
    )
    parser.add_argument("--quantize", nargs="+", default=["none"], choices=["none", "dynamic", "static"])
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (ONNX Runtime intra-op, torch)"
    )
    parser.add_argument("--device", default="auto", help="torch/onnxruntime device")
    parser.add_argument(
        "--no-spin", action="store_true", help="ONNX Runtime threads sleep instead of spinning"
    )
    parser.add_argument(
        "--scene-objects",
        type=int,
        default=3,
        help="random-weight mode: decode/PnP run on target maps of this many objects (0: on the "
        "network's own outputs)",
    )
    parser.add_argument(
        "--reference",
        type=parse_reference,
        default=None,
        metavar="VARIANT@WxH",
        help="run each configuration interleaved with this random-weight ONNX Runtime model "
        "(e.g. hrpose_student@640x480) and report the speed-up against it",
    )
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--work-dir", default=None, help="where exported/quantised models go (default: temp)")
    parser.add_argument("--out", default="docs/benchmarks/bench_runtime", help="output path without suffix")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run all configurations; write JSON + markdown; print the table."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="hrpose_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    frame = make_frame()
    K = intrinsics_matrix(600.0, 600.0, 319.5, 239.5)
    bundles: dict[Any, tuple[ModelBundle, Any]] = {}
    rows = []
    reference = None
    if args.reference:
        ref_name, ref_size = args.reference
        ref_bundle, _ = export_random_bundle(ref_name, args.catalogue, ref_size, work / "reference")
        ref_backend = create_backend(
            "onnxruntime", ref_bundle, threads=args.threads, device="cpu", spin=not args.no_spin
        )
        if args.scene_objects > 0:
            ref_backend = SceneOutputs(ref_backend, K, args.scene_objects)
        reference = (
            f"{ref_name} {ref_size[0]}x{ref_size[1]} (reference)",
            Estimator(ref_bundle, ref_backend),
        )
    for backend_name, size, opt, quant in _configs(args):
        if size not in bundles:
            bundles[size] = (
                (load_bundle(args.bundle), None)
                if args.bundle
                else export_random_bundle(args.model, args.catalogue, size, work)
            )
        bundle, model = bundles[size]
        options: dict[str, Any] = {}
        if backend_name == "onnxruntime":
            options = {
                "threads": args.threads,
                "graph_optimization": opt,
                "device": args.device,
                "spin": not args.no_spin,
            }
            if quant != "none":
                options["onnx_path"] = quantize(bundle, quant, work, frame)
        elif backend_name == "torch":
            options = {
                "model": model,
                "checkpoint": args.checkpoint,
                "device": args.device,
                "threads": args.threads,
            }
        backend = create_backend(backend_name, bundle, **options)
        if args.bundle is None and args.scene_objects > 0:
            backend = SceneOutputs(backend, K, args.scene_objects)
        estimator = Estimator(bundle, backend)  # a bundle decodes at its own settings
        label = f"{backend_name} {bundle.input_width}x{bundle.input_height} {opt} {quant}"
        ref_stats = None
        if reference is None:
            stats = run_one(estimator, frame, K, frames=args.frames, warmup=args.warmup, label=label)
        else:
            both = run_interleaved(
                {label: estimator, reference[0]: reference[1]},
                frame,
                K,
                frames=args.frames,
                warmup=args.warmup,
            )
            stats, ref_stats = both[label], both[reference[0]]
        if quant != "none":
            stats["max_rel_error_vs_fp32"] = output_error_vs_fp32(bundle, backend, frame)
        rows.append(
            {
                "backend": backend_name,
                "input_size": f"{bundle.input_width}x{bundle.input_height}",
                "graph_opt": opt,
                "quantize": quant,
                "stats": stats,
                "providers": getattr(backend, "providers", None),
            }
        )
        if ref_stats is not None:
            rows[-1]["speedup_vs_reference"] = stats["fps_median"] / ref_stats["fps_median"]
            rows.append(
                {
                    "backend": "onnxruntime",
                    "input_size": reference[0],
                    "graph_opt": "all",
                    "quantize": "none",
                    "stats": ref_stats,
                    "providers": None,
                }
            )
        _LOG.warning("%s: %.2f fps", label, stats["fps_median"])
        backend.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "scripts/bench_runtime.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "frame_size": list(FRAME_SIZE),
        "threads": args.threads,
        "frames": args.frames,
        "spin": not args.no_spin,
        "bundle": args.bundle or f"{args.model} (seeded random weights)",
        "reference": None
        if args.reference is None
        else f"{args.reference[0]}@{args.reference[1][0]}x"
        f"{args.reference[1][1]} (seeded random weights, ONNX Runtime, interleaved frame by frame)",
        "decode_pnp_on": "network outputs"
        if args.bundle or not args.scene_objects
        else f"target maps of {args.scene_objects} objects (geometry.targets)",
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    table = markdown_table(rows)
    out.with_suffix(".md").write_text(f"# Runtime benchmark\n\n{json.dumps(meta)}\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

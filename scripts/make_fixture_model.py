"""Make the node tests' fixture: a few rendered frames and a tiny model overfit to them.

Until a shipped model exists, the integration tests need a network that really finds
objects in a played sequence (empty output on both sides would prove nothing). This
script renders ``--frames`` images of two LM-O objects with the synthetic generator
(``data.synthetic``), trains the smallest registered variant (``hrpose_tiny``) on
them on the CPU until it overfits, exports the ONNX bundle with ``training.export`` and
writes:

- ``test/data/fixture_stream/``: the frames as a BOP folder (played by ``hrpose-play``);
- ``test/data/fixture_model/fixture.{onnx,json}``: the FP32 bundle (no FP16 copy).

Reproducible from ``--seed`` (same frames; training is seeded, CPU float32). Needs the
LM-O meshes named in ``config/objects.yaml`` and the training stack (torch, timm,
moderngl). About 5-10 minutes on 2 cores. The tests load the committed result; they
never train.

Usage::

    python scripts/make_fixture_model.py            # defaults below
    python scripts/make_fixture_model.py --steps 600 --frames 8 --seed 3
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("ape", "cat")
IMAGE_SIZE = (320, 240)
"""Frames (W, H): larger than the network input, so the tests cover the letterbox mapping."""
INPUT_SIZE = (160, 128)
"""Network input (W, H) of the fixture model."""
FOCAL_PX = 300.0

_LOG = logging.getLogger("make_fixture_model")


def render_frames(out: Path, num_frames: int, seed: int, catalogue) -> Path:
    """Render the frames into ``out`` (BOP dataset folder); return the split folder."""
    from hrpose_ros.data.synthetic import SynthConfig, generate_dataset  # noqa: PLC0415
    from hrpose_ros.geometry.camera import intrinsics_matrix  # noqa: PLC0415 (script: heavy imports late)

    w, h = IMAGE_SIZE
    K = intrinsics_matrix(FOCAL_PX, FOCAL_PX, (w - 1) / 2.0, (h - 1) / 2.0)
    config = dataclasses.replace(
        SynthConfig(),
        width=w,
        height=h,
        K=tuple(K.reshape(-1).tolist()),
        mode="render",
        objects_per_image=(1, 2),
        distractors_per_image=(0, 0),
        distance_m=(0.3, 0.45),
        margin_fraction=0.2,
        blur_prob=0.0,
        noise_prob=0.0,
        jitter=0.0,
        other_objects_as_distractors=False,
        images_per_scene=num_frames,
        image_ext="jpg",
    )
    return generate_dataset(
        out, catalogue, config, num_frames, seed=seed, workers=1, split="test", progress=False
    )


def train_tiny(train_dir: Path, catalogue, steps: int, seed: int, threads: int = 2):
    """Overfit ``hrpose_tiny`` on the frames; return the model (eval mode).

    Full backpropagation through HRNet costs seconds per step on a shared 2-core CPU, so
    the fixture keeps the (seeded, randomly initialised) backbone fixed: its BatchNorm
    statistics are calibrated on the frames, the fused features are computed once, and
    only the regressor (``head``, ``belief_head``, ``vector_head``) is fitted to the
    targets with ``training.losses.target_loss``, full batch. A fixture, not a model:
    it only has to find the objects of these frames.
    """
    import torch  # noqa: PLC0415

    from hrpose_ros.network.model import create_model  # noqa: PLC0415
    from hrpose_ros.training.dataset import BopPoseDataset, collate  # noqa: PLC0415
    from hrpose_ros.training.losses import target_loss  # noqa: PLC0415

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    data = BopPoseDataset(train_dir, catalogue, input_size=INPUT_SIZE, augment=None, seed=seed)
    batch = collate([data[i] for i in range(len(data))])
    model = create_model("hrpose_tiny", len(catalogue))
    with torch.no_grad():
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # cumulative average: exact batch statistics
        model.backbone(batch["image"])
        model.eval()
        features = model(batch["image"])["features"]
    regressor = [model.head, model.belief_head, model.vector_head]
    params = [p for m in regressor for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    for step in range(steps):
        for m in regressor:
            m.train()
        hidden = model.head(features)
        pred = {"belief": model.belief_head(hidden), "vectors": model.vector_head(hidden)}
        loss = target_loss(pred, batch["belief"], batch["vectors"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == steps - 1:
            _LOG.info("step %d/%d: loss %.5f", step + 1, steps, float(loss))
    return model.eval()


def check_detections(bundle_path: Path, stream: Path) -> list[int]:
    """Detections per frame of the exported bundle on the stream (ONNX Runtime, as the node)."""
    import cv2  # noqa: PLC0415

    from hrpose_ros.data.bop import read_dataset  # noqa: PLC0415
    from hrpose_ros.runtime.backends import create_backend  # noqa: PLC0415
    from hrpose_ros.runtime.bundle import load_bundle  # noqa: PLC0415
    from hrpose_ros.runtime.estimator import Estimator  # noqa: PLC0415

    bundle = load_bundle(bundle_path)
    estimator = Estimator(bundle, create_backend("onnxruntime", bundle, threads=2))
    counts = []
    for frame in read_dataset(stream):
        dets = estimator(cv2.imread(str(frame.rgb_path)), frame.K, None, "bgr8")
        errors = []
        for d in dets:
            gt = [g for g in frame.instances if g.obj_id == d.class_id]
            if gt:
                errors.append(min(float(np.linalg.norm(g.t - d.t)) for g in gt))
        _LOG.info(
            "frame %d: %d detections (gt %d), translation errors %s m",
            frame.im_id,
            len(dets),
            len(frame.instances),
            [round(e, 3) for e in errors],
        )
        counts.append(len(dets))
    return counts


def main(argv: list[str] | None = None) -> int:
    """Render, train, export, check; exit 1 if the model finds nothing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8, help="frames to render (default 8)")
    parser.add_argument("--steps", type=int, default=1500, help="optimiser steps (default 1500)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out-model", type=Path, default=ROOT / "test/data/fixture_model")
    parser.add_argument("--out-stream", type=Path, default=ROOT / "test/data/fixture_stream")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import torch  # noqa: PLC0415

    from hrpose_ros.geometry.objects import load_catalogue  # noqa: PLC0415
    from hrpose_ros.training.export import export_bundle  # noqa: PLC0415

    torch.manual_seed(args.seed)
    catalogue = load_catalogue(ROOT / "config/objects.yaml").select(list(CLASSES))
    with tempfile.TemporaryDirectory() as tmp:
        split = render_frames(Path(tmp) / "synth", args.frames, args.seed, catalogue)
        model = train_tiny(split, catalogue, args.steps, args.seed)
        if args.out_stream.exists():
            shutil.rmtree(args.out_stream)
        shutil.copytree(split, args.out_stream, ignore=shutil.ignore_patterns("mask*", "depth"))
    args.out_model.mkdir(parents=True, exist_ok=True)
    bundle = export_bundle(
        model,
        catalogue,
        args.out_model / "fixture",
        input_size=INPUT_SIZE,
        fp16=False,
        model_name="hrpose_tiny",
        training={
            "purpose": "test fixture (overfit)",
            "frames": args.frames,
            "steps": args.steps,
            "seed": args.seed,
        },
    )
    counts = check_detections(bundle.metadata_path, args.out_stream)
    total = sum(
        p.stat().st_size for d in (args.out_model, args.out_stream) for p in d.rglob("*") if p.is_file()
    )
    print(f"frames      {len(counts)}\ndetections  {counts}\nbytes       {total}")
    print(f"bundle      {bundle.metadata_path}")
    return 0 if sum(counts) > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

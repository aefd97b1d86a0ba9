"""Training throughput of HRPose variants on this machine: images/s per arm, side by side.

Why: on a 2-core CPU the number of training samples a model sees in an hour decides
whether it learns which corner is which; every recipe choice (backbone, fusion, crop
size, batch) is first a question of images/s. Each arm runs real optimiser steps of
``hrpose-train``'s own ``Trainer`` on a real BOP folder (data loading, targets, forward,
loss, backward, Adam), and the median step time of the steps after a warm-up is reported.
All arms run in one process, one after the other, so their ratios are comparable.

    python scripts/bench_train.py --data data/lite/train/train_synt \\
        --arm hrpose_lite0:160:16 --arm hrpose_lite2:160:16 --arm hrpose_student:0:8 --steps 12

An arm is ``VARIANT:CROP:BATCH`` (CROP 0 = whole images at --input); ``--teacher VARIANT``
adds a frozen teacher forward (knowledge distillation) to every arm.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

import torch

from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.network.model import create_model
from hrpose_ros.training.config import DataConfig, LossConfig, OptimConfig, TrainConfig
from hrpose_ros.training.train import Trainer, build_datasets


def _arm(text: str) -> tuple[str, int, int]:
    variant, crop, batch = text.split(":")
    return variant, int(crop), int(batch)


def measure(cfg: TrainConfig, steps: int, warmup: int, teacher_variant: str | None) -> float:
    """Median images/s of ``steps`` optimiser steps after ``warmup`` steps."""
    catalogue = load_catalogue(cfg.data.objects)
    train_set, _, collate = build_datasets(cfg, catalogue)
    teacher = create_model(teacher_variant, len(catalogue)).eval() if teacher_variant else None
    trainer = Trainer(cfg, train_set, catalogue, collate_fn=collate, teacher=teacher)
    trainer.model.train()
    it = iter(trainer.train_loader)
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        trainer.train_step(next(it))
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return cfg.batch_size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="training BOP folder")
    parser.add_argument("--objects", default="config/objects.yaml")
    parser.add_argument("--arm", action="append", type=_arm, required=True, help="VARIANT:CROP:BATCH")
    parser.add_argument("--input", type=int, nargs=2, default=(448, 352), metavar=("W", "H"))
    parser.add_argument("--teacher", default=None, help="frozen teacher variant (distillation cost)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    parser.add_argument(
        "--memory-format",
        choices=("channels_last", "contiguous", "both"),
        default="channels_last",
        help="memory order of weights and images (TrainConfig.channels_last); both: each arm twice",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = TrainConfig(
        role="student" if args.teacher else "teacher",
        device="cpu",
        amp=False,
        log_every=0,
        overlay_every=0,
        data=DataConfig(
            train_dir=args.data,
            objects=args.objects,
            input_width=args.input[0],
            input_height=args.input[1],
            num_workers=args.workers,
        ),
        optim=OptimConfig(lr=1e-3),
        loss=LossConfig(peak_weight=20.0),
    )
    print(f"{'arm':38s} {'images/s':>9s}   ({args.threads} threads, {args.workers} loader workers)")
    formats = {"channels_last": (True,), "contiguous": (False,), "both": (False, True)}[args.memory_format]
    with tempfile.TemporaryDirectory() as out:
        for variant, crop, batch in args.arm:
            for channels_last in formats:
                data = replace(base.data, crop_width=crop, crop_height=crop)
                cfg = replace(
                    base, model=variant, batch_size=batch, out_dir=out, data=data, channels_last=channels_last
                )
                rate = measure(cfg, args.steps, args.warmup, args.teacher)
                size = f"crop {crop}" if crop else f"{args.input[0]}x{args.input[1]}"
                order = "NHWC" if channels_last else "NCHW"
                name = f"{variant}, {size}, batch {batch}, {order}"
                print(f"{name:38s} {rate:9.1f}", flush=True)


if __name__ == "__main__":
    main()

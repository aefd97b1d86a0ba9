"""Distillation ablation (the paper's Table IV): the student without KD, with output KD, with
feature-similarity KD, and with both, trained on the same data and evaluated on the same test set.

Command (full schedule on a GPU; see ``--help`` for every option)::

    python scripts/ablation.py --teacher runs/teacher/last.pt \\
        --train data/synthetic/train_synt --test data/synthetic_test/test --out runs/ablation

Small CPU run (reduced resolution, a few steps per arm)::

    python scripts/ablation.py --teacher runs/lmo256/teacher/last.pt \\
        --train runs/lmo256/train/train_synt --test runs/lmo256/test/test --out runs/ablation_cpu \\
        --width 256 --height 192 --batch-size 8 --epochs 1 --max-steps 75 --device cpu --set threads=1

Each arm is one ``hrpose-train student`` run (same seed, so the same batches and
augmentation) with ``distill.alpha`` / ``distill.beta`` set to 0 where the term is off,
followed by ``hrpose-eval`` on ``--test``. Prints a markdown table and writes
``<out>/ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from hrpose_ros.data.bop import read_dataset
from hrpose_ros.evaluation.runner import evaluate
from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.training.config import load_config
from hrpose_ros.training.evaluate import estimator_for_checkpoint
from hrpose_ros.training.train import CHECKPOINT_NAME, run

ARMS: dict[str, tuple[str, bool, bool]] = {
    "HRPose (no KD)": ("no_kd", False, False),
    "HRPose + output KD": ("output_kd", True, False),
    "HRPose + feature KD": ("feature_kd", False, True),
    "HRPose + output KD + feature KD": ("both_kd", True, True),
}
"""Arm name -> (output subfolder, output distillation on, feature-similarity distillation on)."""


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="trained teacher checkpoint")
    p.add_argument("--train", required=True, help="training BOP folder")
    p.add_argument("--test", required=True, help="held-out BOP folder for evaluation")
    p.add_argument("--objects", default="config/objects.yaml", help="object catalogue")
    p.add_argument("--config", default="config/train_student.yaml", help="student training config")
    p.add_argument("--out", default="runs/ablation", help="output folder (one subfolder per arm)")
    p.add_argument("--width", type=int, help="network input width (data.input_width)")
    p.add_argument("--height", type=int, help="network input height (data.input_height)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--device")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of output KD when on (paper 0.5)")
    p.add_argument("--beta", type=float, default=5e-5, help="weight of feature KD when on (paper 5e-5)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    return p.parse_args(argv)


def _arm_overrides(args: argparse.Namespace, out: Path, output_kd: bool, feature_kd: bool) -> list[str]:
    pairs = {
        "role": "student",
        "teacher_checkpoint": args.teacher,
        "data.train_dir": args.train,
        "data.objects": args.objects,
        "out_dir": str(out),
        "data.input_width": args.width,
        "data.input_height": args.height,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_steps": args.max_steps,
        "device": args.device,
        "distill.alpha": args.alpha if output_kd else 0.0,
        "distill.beta": args.beta if feature_kd else 0.0,
    }
    return [f"{k}={v}" for k, v in pairs.items() if v is not None] + list(args.set)


def main(argv: Sequence[str] | None = None) -> int:
    """Train and evaluate the four arms; print the table."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    catalogue = load_catalogue(args.objects)
    images = read_dataset(args.test)
    rows = []
    for name, (folder, output_kd, feature_kd) in ARMS.items():
        out = Path(args.out) / folder
        cfg = load_config(args.config, _arm_overrides(args, out, output_kd, feature_kd))
        history = run(cfg)
        estimator, _ = estimator_for_checkpoint(out / CHECKPOINT_NAME, catalogue, cfg.device)
        result = evaluate(estimator, images, catalogue)
        rows.append(
            {
                "arm": name,
                "output_kd": output_kd,
                "feature_kd": feature_kd,
                "add": result.average["add_accuracy"],
                "proj": result.average["proj_accuracy"],
                "images_per_s": history[-1].get("train/images_per_s") if history else None,
            }
        )
    lines = ["| method | output KD | feature KD | ADD(-S) % | 2D proj % |", "|---|:-:|:-:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {'✓' if r['output_kd'] else ''} | {'✓' if r['feature_kd'] else ''} | "
            f"{r['add']:.2f} | {r['proj']:.2f} |"
        )
    print("\n".join(lines))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

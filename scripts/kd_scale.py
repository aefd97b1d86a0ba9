"""The scale of the distillation terms, to choose the feature-similarity weight beta.

Why: the paper's total loss is ``L_gt + alpha L_out + beta L_fs`` with alpha = 0.5 and
beta = 5e-5, but beta belongs to the paper's own reduction of ``L_fs`` (its Eq. 5, not in
this project's references). This package's ``L_fs`` (``training.losses``) is the *mean*
squared difference over the pairs of a pooled grid of at most 768 cells, and at that
reduction beta = 5e-5 makes the term about 1e-4 of ``L_gt``: it does nothing (issue 3).
This script measures the terms of a student against a teacher on training batches of a
config, the way ``hrpose-train student`` computes them, and prints the beta (and alpha)
that give each term a chosen share of ``L_gt``::

    python scripts/kd_scale.py --config config/train_lite0_student.yaml \\
        --teacher runs/lite/teacher/last.pt --batches 8 --share 0.25

``--student`` takes a checkpoint; without it the student is the config's model as
training starts (ImageNet weights where the config says so), which is when the ratio
matters for the first steps.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.network.checkpoint import model_from_checkpoint
from hrpose_ros.network.model import create_model
from hrpose_ros.training.config import load_config
from hrpose_ros.training.losses import (
    feature_similarity_loss,
    output_distillation_loss,
    target_loss,
)
from hrpose_ros.training.train import _targets, build_datasets, load_teacher, make_loader


def measure_terms(cfg, teacher: torch.nn.Module, student: torch.nn.Module, batches: int) -> dict[str, float]:
    """Mean ``L_gt``, ``L_out`` and ``L_fs`` (this package's mean reduction) over ``batches``
    training batches of ``cfg`` (its augmentation and crops, seed ``cfg.seed``)."""
    catalogue = load_catalogue(cfg.data.objects, cfg.data.mesh_dir or None)
    train_set, _, collate = build_datasets(cfg, catalogue)
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = make_loader(train_set, cfg, generator, collate)
    terms: dict[str, list[float]] = {"gt": [], "out": [], "fs": []}
    student.eval()
    with torch.no_grad():
        for index, batch in enumerate(loader):
            if index == batches:
                break
            out_s, out_t = student(batch["image"]), teacher(batch["image"])
            belief, vectors, alternatives = _targets(batch, cfg, len(catalogue))
            gt = target_loss(
                out_s,
                belief,
                vectors,
                cfg.loss.peak_weight,
                vector_field=cfg.data.vector_field,
                offset_weight=cfg.loss.offset_weight,
                offset_alternatives=alternatives,
            )
            terms["gt"].append(float(gt))
            terms["out"].append(float(output_distillation_loss(out_s, out_t)))
            fs = feature_similarity_loss(out_s["features"], out_t["features"], cfg.distill.max_locations)
            terms["fs"].append(float(fs))
    if not terms["gt"]:
        raise ValueError("no training batch was read")
    return {key: float(np.mean(values)) for key, values in terms.items()}


def weights_for_share(terms: dict[str, float], share: float) -> dict[str, float]:
    """alpha and beta that make ``alpha L_out`` and ``beta L_fs`` each ``share`` x ``L_gt``."""
    return {
        "alpha": share * terms["gt"] / terms["out"] if terms["out"] > 0 else float("inf"),
        "beta": share * terms["gt"] / terms["fs"] if terms["fs"] > 0 else float("inf"),
    }


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="student training config (YAML)")
    p.add_argument("--teacher", required=True, help="teacher checkpoint")
    p.add_argument("--student", help="student checkpoint (default: the config's model at step 0)")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--share", type=float, default=0.25, help="wanted share of L_gt per distillation term")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.set)
    catalogue = load_catalogue(cfg.data.objects, cfg.data.mesh_dir or None)
    teacher = load_teacher(args.teacher, len(catalogue), torch.device("cpu"))
    if args.student:
        student, _ = model_from_checkpoint(args.student)
    else:
        torch.manual_seed(cfg.seed)
        student = create_model(cfg.model, len(catalogue), pretrained_path=cfg.pretrained or None)
    terms = measure_terms(cfg, teacher, student, args.batches)
    weights = weights_for_share(terms, args.share)
    print(
        f"over {args.batches} batches of {cfg.batch_size}: L_gt {terms['gt']:.4g}, L_out {terms['out']:.4g}, "
        f"L_fs {terms['fs']:.4g} (mean over pairs)"
    )
    print(
        f"the paper's weights give alpha L_out = {0.5 * terms['out'] / terms['gt']:.3g} L_gt and "
        f"beta L_fs = {5e-5 * terms['fs'] / terms['gt']:.3g} L_gt"
    )
    print(f"for {args.share:g} L_gt each: alpha {weights['alpha']:.3g}, beta {weights['beta']:.3g}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How precise must the keypoints be? ADD(-S) of PnP on ground-truth keypoints plus noise.

Why: ADD(-S) fails a pose whose mean point error exceeds a tenth of the object's
diameter, and a tenth of a 10 cm object at 0.8 m is about 1.5 % of the distance; PnP gets
the distance from the spread of the 2D keypoints. This script puts a number on it for a
given test set: it projects each ground-truth instance's 9 keypoints (the catalogue's
cuboid), adds Gaussian noise of sigma pixels per axis in the image's own pixels, solves
the pose with the package's PnP and scores it with the package's ADD(-S). The sigma at
which the accuracy crosses a bar is the keypoint precision a network must reach there;
compare it with ``scripts/corner_identity.py``'s median corner error (output pixels x
stride / network scale).

    python scripts/keypoint_precision.py --data data/upright/heldout/test --images 150
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from hrpose_ros.data.bop import BopImage, read_dataset
from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.metrics import add_passed, pose_error_add_or_adds
from hrpose_ros.geometry.objects import Catalogue, load_catalogue
from hrpose_ros.geometry.pnp import solve_pnp

DEFAULT_SIGMAS = (0.5, 1.0, 2.0, 4.0, 8.0)
POINT_STEP = 20
"""Every 20th mesh vertex for ADD(-S): the mean distance barely changes, the time does."""


def add_accuracy_under_noise(
    images: Sequence[BopImage], catalogue: Catalogue, sigma_px: float, seed: int = 0
) -> tuple[float, int]:
    """Share of the catalogue's ground-truth instances in ``images`` that pass ADD(-S)
    when PnP gets their projected keypoints plus N(0, sigma_px^2) noise; and their count."""
    rng = np.random.default_rng(seed)
    index = {spec.id: c for c, spec in enumerate(catalogue)}
    points = [spec.model_points()[::POINT_STEP] for spec in catalogue]
    passed: list[bool] = []
    for image in images:
        for gt in image.instances:
            c = index.get(gt.obj_id)
            if c is None:
                continue
            spec = catalogue[c]
            uv = project_points(spec.keypoints, gt.R, gt.t, image.K)
            pose = solve_pnp(spec.keypoints, uv + rng.normal(0.0, sigma_px, uv.shape), image.K)
            if pose is None:
                passed.append(False)
                continue
            err = pose_error_add_or_adds(pose.R, pose.t, gt.R, gt.t, points[c], spec.symmetric)
            passed.append(add_passed(err, spec.diameter))
    return (float(np.mean(passed)) if passed else float("nan")), len(passed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="BOP folder with ground truth")
    parser.add_argument("--objects", default="config/objects.yaml")
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(DEFAULT_SIGMAS))
    args = parser.parse_args()
    catalogue = load_catalogue(args.objects)
    images = read_dataset(args.data)[: args.images]
    print("| keypoint noise sigma (image px, per axis) | ADD(-S) | instances |")
    print("|---:|---:|---:|")
    for sigma in args.sigmas:
        accuracy, count = add_accuracy_under_noise(images, catalogue, sigma)
        print(f"| {sigma:g} | {100 * accuracy:.1f} % | {count} |")


if __name__ == "__main__":
    main()

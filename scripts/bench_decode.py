"""Benchmark of the geometry core's hot path: decode + PnP on one image's network outputs.

Maps are the size of a 640x480 input at stride 4 (160x120), made by the targets
module from projected keypoints of random cuboid objects, plus Gaussian noise, so
peak search, grouping and PnP see realistic work. Prints the median time per image
for 1 object and for 13 classes x 2 instances (LINEMOD has 13 classes).

    python scripts/bench_decode.py [--repeats 200] [--noise 0.02] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import time

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from hrpose_ros.geometry.camera import intrinsics_matrix, project_points
from hrpose_ros.geometry.decode import DecodeParams, decode
from hrpose_ros.geometry.keypoints import cuboid_keypoints
from hrpose_ros.geometry.pnp import solve_instance_pose
from hrpose_ros.geometry.targets import belief_maps, vector_fields

_LOG = logging.getLogger("bench_decode")

IMAGE_WH = (640, 480)
STRIDE = 4


def make_scene(num_classes: int, per_class: int, noise: float, seed: int = 0) -> dict:
    """Network-like outputs for random cuboids spread over a 640x480 image.

    Returns:
        dict with ``belief`` (C*9, 120, 160), ``vectors`` (C*16, 120, 160) float32,
        ``keypoints_3d`` (C, 9, 3), ``K`` (3, 3) and ``num_classes``.
    """
    rng = np.random.default_rng(seed)
    K = intrinsics_matrix(572.4, 573.6, 325.3, 242.0)
    sizes = rng.uniform(0.05, 0.2, size=(num_classes, 3))
    kp3 = np.stack([cuboid_keypoints(-s / 2, s / 2) for s in sizes])
    cells = [(cx, cy) for cy in np.linspace(70, 410, 5) for cx in np.linspace(70, 570, 6)]
    order = rng.permutation(len(cells))
    kp2, cls = [], []
    for m, (c, _) in enumerate((c, j) for c in range(num_classes) for j in range(per_class)):
        u, v = cells[order[m % len(cells)]]
        z = rng.uniform(0.8, 1.2)
        t = np.array([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z])
        kp2.append(project_points(kp3[c], Rotation.random(random_state=rng).as_matrix(), t, K))
        cls.append(c)
    hw = (IMAGE_WH[1] // STRIDE, IMAGE_WH[0] // STRIDE)
    kp2, cls = np.asarray(kp2), np.asarray(cls)
    belief = belief_maps(kp2, cls, num_classes, hw, STRIDE)
    vectors = vector_fields(kp2, cls, num_classes, hw, STRIDE)
    belief += rng.normal(0.0, noise, belief.shape).astype(np.float32)
    vectors += rng.normal(0.0, noise, vectors.shape).astype(np.float32)
    return {"belief": belief, "vectors": vectors, "keypoints_3d": kp3, "K": K, "num_classes": num_classes}


def decode_and_solve(scene: dict, params: DecodeParams) -> int:
    """The timed work: decode one image and solve PnP for every instance; returns the pose count."""
    poses = 0
    for inst in decode(scene["belief"], scene["vectors"], scene["num_classes"], params, STRIDE):
        poses += solve_instance_pose(inst, scene["keypoints_3d"][inst.class_index], scene["K"]) is not None
    return poses


def time_case(scene: dict, params: DecodeParams, repeats: int) -> tuple[float, float, int]:
    """Median wall and CPU time (seconds) of ``decode_and_solve`` over ``repeats`` runs, and its pose count.

    CPU time (this process only) shows the cost without other programs' load on a shared machine.
    """
    poses = decode_and_solve(scene, params)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        decode_and_solve(scene, params)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)), float(np.median(cpu)), poses


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table of median times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed runs per case (default 200)")
    parser.add_argument("--noise", type=float, default=0.02, help="std of Gaussian noise on the maps")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenCV threads (default 1: fastest for these small problems, leaves a core to inference)",
    )
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cv2.setNumThreads(args.threads)
    params = DecodeParams()
    cases = [("1 object", 1, 1, 2e-3), ("13 classes x 2 instances", 13, 2, 20e-3)]
    rows = []
    for name, classes, per_class, target in cases:
        scene = make_scene(classes, per_class, args.noise, args.seed)
        wall, cpu, poses = time_case(scene, params, args.repeats)
        rows.append((name, wall, cpu, target, poses, classes * per_class))
    print(f"{'case':<26} {'wall ms':>9} {'cpu ms':>9} {'target ms':>10} {'poses':>8}  status")
    for name, wall, cpu, target, poses, expected in rows:
        status = "ok" if wall < target and poses == expected else "MISSED"
        times = f"{wall * 1e3:>9.3f} {cpu * 1e3:>9.3f} {target * 1e3:>10.1f}"
        print(f"{name:<26} {times} {poses:>4}/{expected:<3}  {status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

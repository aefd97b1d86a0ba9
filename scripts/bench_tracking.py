"""Benchmark: the time tracking adds to a frame, for 10 tracked objects (target: < 0.5 ms).

Ten objects of four classes (one with a half-turn symmetry) drift at a few cm/s with
PnP-like noise (2/2/8 mm, 2 deg) at 30 frames/s; ``Tracker.update`` is timed per frame
after a warm-up in which the tracks are confirmed, in wall-clock time and in the thread's
CPU time (the latter is what a loaded machine does not inflate by preempting the
process). Where the ROS messages are installed
it also times what the node builds on top for ``~/tracked`` (the Detection3DArray of
the tracks), which the node only does when tracking is on.

    python scripts/bench_tracking.py [--frames 2000] [--objects 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial.transform import Rotation

from hrpose_ros.geometry.keypoints import cuboid_keypoints
from hrpose_ros.geometry.symmetry import parse_symmetry
from hrpose_ros.runtime.estimator import Detection
from hrpose_ros.runtime.tracking import Tracker

CLASSES = ("ape", "cat", "driller", "glue")
HALF_TURN_Z = parse_symmetry([-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
FPS = 30.0


def make_frames(num_objects: int, num_frames: int, seed: int) -> list[list[Detection]]:
    """Noisy detections of ``num_objects`` drifting objects, in a new random order each frame."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([-0.3, -0.2, 0.6], [0.3, 0.2, 1.2], size=(num_objects, 3))
    velocity = rng.normal(size=(num_objects, 3)) * 0.03
    spin = rng.normal(size=(num_objects, 3)) * np.radians(10.0)
    base = Rotation.random(num_objects, random_state=rng)
    frames = []
    for f in range(num_frames):
        s = f / FPS
        t = start + velocity * s + rng.normal(size=(num_objects, 3)) * np.array([0.002, 0.002, 0.008])
        noise = Rotation.from_rotvec(rng.normal(size=(num_objects, 3)) * np.radians(2.0))
        R = (noise * Rotation.from_rotvec(spin * s) * base).as_matrix()
        dets = [
            Detection(
                class_name=CLASSES[o % len(CLASSES)],
                class_id=o % len(CLASSES),
                class_index=o % len(CLASSES),
                instance=0,
                R=R[o],
                t=t[o],
                confidence=float(rng.uniform(0.3, 0.9)),
                keypoints_2d=np.full((9, 2), np.nan),
                reprojection_error_px=0.5,
                num_points=9,
            )
            for o in range(num_objects)
        ]
        frames.append([dets[k] for k in rng.permutation(num_objects)])
    return frames


def _ms(samples: list[float]) -> str:
    a = 1000.0 * np.asarray(samples)
    return f"median {np.median(a):.3f} ms, p90 {np.percentile(a, 90):.3f} ms, max {a.max():.3f} ms"


def main() -> None:
    """Time ``Tracker.update`` (and the ``~/tracked`` message) per frame; print the summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--objects", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    warmup = 30
    frames = make_frames(args.objects, args.frames + warmup, args.seed)
    tracker = Tracker(symmetries={"glue": [HALF_TURN_Z]})
    times, cpu, counts, outputs = [], [], [], []
    for f, dets in enumerate(frames):
        t0, c0 = time.perf_counter(), time.thread_time()
        tracks = tracker.update(dets, f / FPS)
        elapsed, used = time.perf_counter() - t0, time.thread_time() - c0
        if f >= warmup:
            times.append(elapsed)
            cpu.append(used)
            counts.append(len(tracks))
            outputs.append(tracks)
    print(f"tracks per frame: mean {np.mean(counts):.2f} (of {args.objects} objects)")
    print(f"Tracker.update, {args.objects} objects, {len(times)} frames: {_ms(times)}")
    print(f"Tracker.update, CPU time of this thread (what other processes cannot inflate): {_ms(cpu)}")
    try:
        from std_msgs.msg import Header  # noqa: PLC0415 (optional: ROS messages)

        from hrpose_ros.ros.ros_messages import Detection3DArrayBuilder  # noqa: PLC0415
    except ImportError:
        print("~/tracked message: not timed (ROS messages are not installed)")
        return
    box = cuboid_keypoints(np.full(3, -0.05), np.full(3, 0.05))
    keypoints = dict.fromkeys(CLASSES, box)
    builder, header = Detection3DArrayBuilder(keypoints), Header()
    build = []
    for tracks in outputs[:500]:  # what the node does per frame: the tracks as detections, in place
        t0 = time.perf_counter()
        builder.build([trk.as_detection() for trk in tracks], header, "hrpose/")
        build.append(time.perf_counter() - t0)
    print(f"~/tracked Detection3DArray build: {_ms(build)}")
    total = np.asarray(times[: len(build)]) + np.asarray(build)
    print(f"tracking total per frame (update + message): {_ms(list(total))}")


if __name__ == "__main__":
    main()

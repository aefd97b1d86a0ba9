"""``hrpose-demo``: the node on a bundled sample stream, end to end, over real ROS 2.

Starts ``hrpose_node`` (ONNX Runtime on CPU by default) and ``hrpose-play`` as two
separate processes on a private ROS domain, listens to the node's detections and
overlay from this process, then scores the published poses against the stream's
ground truth with the same matching and metrics as ``hrpose-eval``. Writes to
``--out``: ``overlay/*.png`` (projected cuboids and axes), ``overlay.mp4``,
``poses.csv``, ``summary.json``, and prints the summary.

Example::

    hrpose-demo --model models/hrpose_student.json --stream models/sample_stream --out demo_out
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hrpose_ros.data.bop import BopImage, read_dataset
from hrpose_ros.evaluation.report import format_tables
from hrpose_ros.evaluation.results import EvalResult, summarise
from hrpose_ros.evaluation.scoring import match_detections, score_instance
from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.objects import Catalogue, load_catalogue
from hrpose_ros.ros.ros_messages import image_to_array, rotation_to_quaternion
from hrpose_ros.ros.ros_session import BackgroundNode, stop_process
from hrpose_ros.runtime.bundle import load_bundle, select_for_bundle
from hrpose_ros.runtime.estimator import Detection

__all__ = [
    "DemoRun",
    "answered_frames",
    "detections_from_msg",
    "main",
    "run_demo",
    "score_stream",
    "unanswered_line",
]

_log = logging.getLogger("hrpose_demo")
_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DemoRun:
    """What the demo collected: detections and overlays by image stamp, and the stamp log."""

    detection_msgs: dict[int, object] = field(default_factory=dict)  # stamp -> Detection3DArray
    overlays: dict[int, np.ndarray] = field(default_factory=dict)
    frames: dict[int, tuple[int, int]] = field(default_factory=dict)  # stamp -> (scene_id, im_id)
    diagnostics: dict[str, str] = field(default_factory=dict)  # the node's latest pipeline statistics
    wall_s: float = 0.0


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def detections_from_msg(
    msg, classes: Sequence[str], keypoints_3d: np.ndarray, K: np.ndarray
) -> list[Detection]:
    """Detections of a vision_msgs/Detection3DArray as runtime ``Detection`` objects.

    The 2D keypoints are the projections of the class's 3D keypoints under the
    published pose (what the message means), so scoring needs nothing else.

    Args:
        classes: the model's class names, in order; keypoints_3d: (C, 9, 3) metres.
        K: (3, 3) intrinsics of the image the message answers.
    """
    from scipy.spatial.transform import Rotation  # noqa: PLC0415

    out: list[Detection] = []
    counts: dict[str, int] = {}
    for d in msg.detections:
        hyp = d.results[0]
        name = hyp.hypothesis.class_id
        c = list(classes).index(name)
        p, q = hyp.pose.pose.position, hyp.pose.pose.orientation
        R = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
        t = np.array([p.x, p.y, p.z])
        uv = project_points(keypoints_3d[c], R, t, K)
        out.append(Detection(name, -1, c, counts.get(name, 0), R, t, float(hyp.hypothesis.score), uv, 0.0, 9))
        counts[name] = counts.get(name, 0) + 1
    return out


def answered_frames(
    run: DemoRun, images: Sequence[BopImage], catalogue: Catalogue
) -> list[tuple[int, BopImage, list[Detection]]]:
    """(stamp, ground-truth image, detections) of every played frame the node answered."""
    by_frame = {(im.scene_id, im.im_id): im for im in images}
    keypoints_3d = np.stack([o.keypoints for o in catalogue])
    out = []
    for stamp, frame in sorted(run.frames.items()):
        if stamp in run.detection_msgs and frame in by_frame:
            image = by_frame[frame]
            dets = detections_from_msg(run.detection_msgs[stamp], catalogue.names, keypoints_3d, image.K)
            out.append((stamp, image, dets))
    return out


def score_stream(
    answered: Sequence[tuple[int, BopImage, list[Detection]]], catalogue: Catalogue
) -> EvalResult:
    """ADD(-S) and 2D projection of every ground-truth instance of the answered frames."""
    points = [o.model_points() for o in catalogue]
    results = []
    for _, image, detections in answered:
        for c, gt, det in match_detections(detections, image, catalogue):
            results.append(score_instance(c, gt, det, image.K, catalogue=catalogue, points=points))
    return summarise(results, catalogue, len(answered))


def _ros_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(cmd: list[str], log_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, object]:
    log = open(log_path, "w")  # noqa: SIM115 (closed by _stop)
    return subprocess.Popen(cmd, cwd=_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log


def _stop(proc: subprocess.Popen, log) -> int:
    code = stop_process(proc, timeout_s=15.0)
    log.close()
    return code


class _Collector:
    """This process's subscriber to the node's detections, overlay and diagnostics."""

    def __init__(self, domain_id: int, run: DemoRun):
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415
        from sensor_msgs.msg import Image  # noqa: PLC0415
        from vision_msgs.msg import Detection3DArray  # noqa: PLC0415

        self.run = run
        self._session = BackgroundNode("hrpose_demo_collector", domain_id)
        node = self._session.node
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.det_sub = node.create_subscription(
            Detection3DArray, "hrpose_node/detections", self._on_detections, qos
        )
        self.overlay_sub = node.create_subscription(Image, "hrpose_node/overlay", self._on_overlay, qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, qos)

    def _on_detections(self, msg) -> None:
        self.run.detection_msgs[_stamp_ns(msg.header.stamp)] = msg

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name.endswith("pipeline") and "total_mean_ms" in values:  # windows with frames only
                self.run.diagnostics = values

    def _on_overlay(self, msg) -> None:
        image, encoding = image_to_array(msg)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if encoding == "rgb8" else image.copy()
        self.run.overlays[_stamp_ns(msg.header.stamp)] = bgr

    def ready(self) -> bool:
        return self.det_sub.get_publisher_count() > 0 and self.overlay_sub.get_publisher_count() > 0

    def close(self) -> None:
        self._session.close()


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def _read_stamp_log(path: Path) -> dict[int, tuple[int, int]]:
    frames = {}
    for line in path.read_text().splitlines():
        stamp, scene_id, im_id = (int(v) for v in line.split())
        frames[stamp] = (scene_id, im_id)
    return frames


def run_demo(args: argparse.Namespace) -> DemoRun:
    """Run node + player + collector; return what was collected (processes always stopped)."""
    args.out.mkdir(parents=True, exist_ok=True)
    env = _ros_env(args.domain_id)
    run = DemoRun()
    collector = _Collector(args.domain_id, run)
    node_cmd = [sys.executable, "-m", "hrpose_ros.ros.node", "--ros-args", "--params-file", str(args.params),
                "-p", f"model:={args.model}", "-p", f"backend:={args.backend}",
                "-p", f"inference_threads:={args.threads}", "-p", "qos_reliability:=reliable",
                "-p", "camera_info_mode:=approximate", "-p", "diagnostics_period_s:=1.0",
                "-p", f"catalogue:={args.catalogue}"]  # fmt: skip
    stamp_log = args.out / "stamps.txt"
    play_cmd = [sys.executable, "-m", "hrpose_ros.ros.player", "--bop", str(args.stream), "--once",
                "--rate", str(args.rate), "--preload", "--log-stamps", str(stamp_log),
                "--min-subscribers", "1", "--wait-subscribers", "60"]  # fmt: skip
    if args.max_frames:
        play_cmd += ["--max-frames", str(args.max_frames)]
    node, node_log = _start(node_cmd, args.out / "node.log", env)
    try:
        if not _wait(lambda: collector.ready() or node.poll() is not None, 120) or node.poll() is not None:
            raise RuntimeError(f"hrpose_node did not come up; see {args.out / 'node.log'}")
        start = time.monotonic()
        player, player_log = _start(play_cmd, args.out / "player.log", env)
        player.wait(timeout=args.timeout_s)
        _stop(player, player_log)
        run.frames = _read_stamp_log(stamp_log)
        _wait(lambda: all(s in run.detection_msgs for s in run.frames), args.drain_s)
        run.wall_s = time.monotonic() - start
        # The overlay of a frame follows its detections; the node reports statistics once a second.
        _wait(lambda: bool(run.diagnostics) and all(s in run.overlays for s in run.detection_msgs), 3.0)
    finally:
        collector.close()
        _stop(node, node_log)
    return run


def _write_outputs(
    run: DemoRun, answered: Sequence[tuple[int, BopImage, list[Detection]]], out: Path, fps: float
) -> None:
    overlay_dir = out / "overlay"
    overlay_dir.mkdir(parents=True, exist_ok=True)
    stamps = [s for s in sorted(run.frames) if s in run.overlays]
    writer = None
    for s in stamps:
        scene_id, im_id = run.frames[s]
        image = run.overlays[s]
        cv2.imwrite(str(overlay_dir / f"{scene_id:06d}_{im_id:06d}.png"), image)
        if writer is None:
            h, w = image.shape[:2]
            writer = cv2.VideoWriter(str(out / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        writer.write(image)
    if writer is not None:
        writer.release()
    with open(out / "poses.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stamp_ns", "scene_id", "im_id", "class", "instance", "score",
                    "tx_m", "ty_m", "tz_m", "qx", "qy", "qz", "qw"])  # fmt: skip
        for s, image, detections in answered:
            scene_id, im_id = image.scene_id, image.im_id
            for d in detections:
                q = rotation_to_quaternion(d.R)
                w.writerow([s, scene_id, im_id, d.class_name, d.instance, f"{d.confidence:.4f}",
                            *(f"{v:.5f}" for v in d.t), *(f"{v:.6f}" for v in q)])  # fmt: skip


def _node_line(diagnostics: dict[str, str]) -> str:
    """One line of the node's own measurements (from /diagnostics)."""
    total = float(diagnostics.get("total_mean_ms", "nan"))
    if not total > 0:
        return "node: no diagnostics received"
    stages = ", ".join(
        f"{s} {diagnostics.get(f'{s}_mean_ms', '?')}" for s in ("preprocess", "inference", "decode", "pnp")
    )
    return (
        f"node: {1000.0 / total:.2f} frames/s of pipeline capacity ({total:.1f} ms/frame; {stages} ms), "
        f"image stamp -> publication {diagnostics.get('stamp_to_publish_mean_ms', '?')} ms"
    )


def unanswered_line(played: int, answered: int, diagnostics: dict[str, str], node_log: Path) -> str | None:
    """Why frames went unanswered, from the node's own counters; None when all were answered.

    Why: "17/40 frames answered" alone sends the user guessing; the node counts what it
    dropped (busy), refused (bad input, e.g. no CameraInfo) and failed on.
    """
    if answered >= played:
        return None
    labels = (("dropped", "dropped while busy"), ("bad_input", "bad input"), ("errors", "errors"))
    counts = ", ".join(f"{diagnostics.get(key, '?')} {label}" for key, label in labels)
    return f"{played - answered} frames unanswered; the node counted {counts} (reasons in {node_log})"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hrpose-demo", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", type=Path, default=_ROOT / "models" / "hrpose_student.json", help="model bundle"
    )
    p.add_argument(
        "--stream", type=Path, default=_ROOT / "models" / "sample_stream", help="BOP folder to play"
    )
    p.add_argument("--catalogue", type=Path, default=_ROOT / "config" / "objects.yaml", help="objects.yaml")
    p.add_argument("--params", type=Path, default=_ROOT / "config" / "hrpose.yaml", help="node parameters")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--backend", default="onnxruntime", help="inference backend (default onnxruntime, CPU)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime CPU threads (default 2)")
    p.add_argument("--rate", type=float, default=2.0, help="player frames per second (default 2)")
    p.add_argument("--max-frames", type=int, default=0, help="play only this many frames (0 = all)")
    p.add_argument("--domain-id", type=int, default=150 + os.getpid() % 80, help="private ROS domain id")
    p.add_argument("--timeout-s", type=float, default=600.0, help="longest time the player may take")
    p.add_argument("--drain-s", type=float, default=30.0, help="wait this long for the last answers")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; exit 0 with a summary, 1 with a one-line message on bad input."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parser().parse_args(argv)
    try:
        bundle = load_bundle(args.model)
        catalogue = select_for_bundle(bundle, load_catalogue(args.catalogue))
        images = read_dataset(args.stream)
        run = run_demo(args)
    except (ValueError, OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"hrpose-demo: error: {exc}", file=sys.stderr)
        return 1
    answered = answered_frames(run, images, catalogue)
    result = score_stream(answered, catalogue)
    _write_outputs(run, answered, args.out, fps=max(args.rate, 1.0))
    summary = {"frames_played": len(run.frames), "frames_answered": len(answered),
               "wall_s": round(run.wall_s, 2), "node": run.diagnostics, **result.to_dict()}  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"\nhrpose demo: {len(answered)}/{len(run.frames)} frames answered in {run.wall_s:.1f} s "
          f"(played at {args.rate:g} frames/s), model {args.model.name}")  # fmt: skip
    missing = unanswered_line(len(run.frames), len(answered), run.diagnostics, args.out / "node.log")
    if missing:
        print(missing)
    print(_node_line(run.diagnostics))
    print(format_tables(result))
    print(f"\noutputs in {args.out}/: overlay/*.png, overlay.mp4, poses.csv, summary.json")
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())

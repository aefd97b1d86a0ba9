"""Load test of hrpose_node: a publisher at 4x the node's throughput for 60 s.

Three processes on loopback DDS (a domain id of their own): ``hrpose_node``,
``hrpose-play --loop`` at ``--factor`` times the node's measured throughput, and this
script, which receives the node's detections and diagnostics and samples the node's
resident memory. It reports whether the node keeps processing the newest frames
(processed fps, dropped frames), whether memory stays flat (RSS growth after the
warm-up) and how long a frame takes from its stamp to the node's publication.

Usage::

    python scripts/bench_node.py                       # fixture model and stream, 60 s
    python scripts/bench_node.py --model models/hrpose_student.json --bop data/lmo/test --duration 120

Throughput is first measured on this machine with the same estimator (offline,
``--calibrate-frames`` frames), then the player runs at ``factor / seconds_per_frame``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_LOG = logging.getLogger("bench_node")


def _env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def calibrate(model: Path, bop: Path, frames: int, threads: int) -> float:
    """Seconds per frame of the estimator on this machine (offline, same backend options)."""
    import cv2  # noqa: PLC0415 (script: heavy imports after argument parsing)

    from hrpose_ros.data.bop import read_dataset  # noqa: PLC0415
    from hrpose_ros.runtime.backends import create_backend  # noqa: PLC0415
    from hrpose_ros.runtime.bundle import load_bundle  # noqa: PLC0415
    from hrpose_ros.runtime.estimator import Estimator  # noqa: PLC0415

    bundle = load_bundle(model)
    estimator = Estimator(bundle, create_backend("onnxruntime", bundle, threads=threads))
    images = [(cv2.imread(str(f.rgb_path)), f.K) for f in read_dataset(bop)]
    estimator(*images[0])
    start = time.perf_counter()
    for i in range(frames):
        estimator(*images[i % len(images)])
    return (time.perf_counter() - start) / frames


class Monitor:
    """Receives detections (latency per frame) and diagnostics (the node's counters)."""

    def __init__(self, domain_id: int):
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415
        from vision_msgs.msg import Detection3DArray  # noqa: PLC0415

        from hrpose_ros.ros.ros_session import BackgroundNode  # noqa: PLC0415

        self._session = BackgroundNode("hrpose_bench_monitor", domain_id)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.arrivals: list[tuple[float, float, int]] = []  # (receive time, latency s, detections)
        self.totals: dict[str, float] = {}
        node = self._session.node
        self.sub = node.create_subscription(Detection3DArray, "/hrpose_node/detections", self._on_det, qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, qos)

    def _on_det(self, msg) -> None:
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.arrivals.append((now, now - stamp, len(msg.detections)))

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("hrpose_node"):
                for kv in status.values:
                    with contextlib.suppress(ValueError):
                        self.totals[kv.key] = float(kv.value)

    def close(self) -> None:
        self._session.close()


def run(args: argparse.Namespace) -> dict[str, float]:
    """Run the benchmark; return the reported numbers."""
    seconds_per_frame = calibrate(args.model, args.bop, args.calibrate_frames, args.threads)
    rate = args.factor / seconds_per_frame
    _LOG.info(
        "offline %.1f ms/frame -> publishing at %.1f Hz (%gx)", 1000 * seconds_per_frame, rate, args.factor
    )
    env = _env(args.domain_id)
    node_cmd = [sys.executable, "-m", "hrpose_ros.ros.node", "--ros-args"]
    for key, value in {
        "model": str(args.model),
        "backend": "onnxruntime",
        "inference_threads": str(args.threads),
        "diagnostics_period_s": "1.0",
    }.items():
        node_cmd += ["-p", f"{key}:={value}"]
    node_log = open(args.node_log, "w")  # noqa: SIM115 (closed below)
    node = subprocess.Popen(node_cmd, cwd=ROOT, env=env, stdout=node_log, stderr=subprocess.STDOUT)
    from hrpose_ros.ros.ros_session import stop_process  # noqa: PLC0415

    monitor = Monitor(args.domain_id)
    player = None
    try:
        deadline = time.monotonic() + 60
        while monitor.sub.get_publisher_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        player_cmd = [
            sys.executable,
            "-m",
            "hrpose_ros.ros.player",
            "--bop",
            str(args.bop),
            "--rate",
            f"{rate:.3f}",
        ]
        player_cmd += ["--loop", "--preload", "--wait-subscribers", "30"]
        player = subprocess.Popen(
            player_cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        start = time.time()
        rss: list[tuple[float, float]] = []
        while time.time() - start < args.duration:
            rss.append((time.time() - start, rss_mb(node.pid)))
            time.sleep(1.0)
        stop_process(player)
        end = time.time()
        time.sleep(2.0)
        totals = dict(monitor.totals)
    finally:
        if player is not None:
            stop_process(player)
        stop_process(node)
        node_log.close()
        monitor.close()
    return summarise(monitor.arrivals, rss, totals, start=start, end=end, warmup=args.warmup, rate=rate)


def summarise(
    arrivals, rss, totals, *, start: float, end: float, warmup: float, rate: float
) -> dict[str, float]:
    """Numbers after the warm-up: processed fps, drops, RSS growth, stamp-to-publication latency."""
    steady = [(t, lat, n) for t, lat, n in arrivals if start + warmup <= t <= end]
    latencies = np.array([lat for _, lat, _ in steady]) * 1000.0
    rss_steady = [mb for t, mb in rss if t >= warmup]
    window = max(end - (start + warmup), 1e-9)
    received_hz = totals.get("received", float("nan")) / max(end - start, 1e-9)
    processed_fps = len(steady) / window
    return {
        "publish_rate_hz": rate,
        "received_rate_hz": received_hz,
        "processed_fps": processed_fps,
        "received_over_processed": received_hz / max(processed_fps, 1e-9),
        "frames_with_detections_pct": 100.0 * sum(1 for *_, n in steady if n) / max(len(steady), 1),
        "node_received": totals.get("received", float("nan")),
        "node_processed": totals.get("processed", float("nan")),
        "node_dropped": totals.get("dropped", float("nan")),
        "rss_after_warmup_mb": rss_steady[0] if rss_steady else float("nan"),
        "rss_end_mb": rss_steady[-1] if rss_steady else float("nan"),
        "rss_growth_mb": (rss_steady[-1] - rss_steady[0]) if rss_steady else float("nan"),
        "rss_max_growth_mb": (max(rss_steady) - rss_steady[0]) if rss_steady else float("nan"),
        "latency_median_ms": float(np.median(latencies)) if latencies.size else float("nan"),
        "latency_p99_ms": float(np.percentile(latencies, 99)) if latencies.size else float("nan"),
        "latency_max_ms": float(latencies.max()) if latencies.size else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    """Run and print the table; exit 1 if memory grew 20 MB or more after the warm-up."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "test/data/fixture_model/fixture.json")
    p.add_argument("--bop", type=Path, default=ROOT / "test/data/fixture_stream")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of publishing (default 60)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds excluded at the start (default 10)")
    p.add_argument("--factor", type=float, default=4.0, help="publish rate / node throughput (default 4)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the node (default 1)")
    p.add_argument("--calibrate-frames", type=int, default=30)
    p.add_argument("--domain-id", type=int, default=90 + os.getpid() % 10)
    p.add_argument("--node-log", type=Path, default=Path("/tmp/hrpose_bench_node.log"))
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    numbers = run(args)
    for key, value in numbers.items():
        print(f"{key:28s} {value:10.2f}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0 if numbers["rss_growth_mb"] < 20.0 else 1


if __name__ == "__main__":
    sys.exit(main())

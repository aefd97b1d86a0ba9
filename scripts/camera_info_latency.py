"""How late Image and CameraInfo arrive from ``hrpose-play``, per Fast DDS transport choice.

Why: an image whose CameraInfo is late is dropped by hrpose_node (``no_camera_info``).
Over Fast DDS's shared-memory transport, small reliable messages came seconds late under
CPU load while images did not (``hrpose_ros/ros/dds_transport.py``). This script plays a
BOP folder with the real player in a child process and receives both topics in this
process, with ``FASTDDS_BUILTIN_TRANSPORTS`` chosen per side, so that claim can be
re-measured on any machine::

    python scripts/camera_info_latency.py                               # both sides unset
    python scripts/camera_info_latency.py --subscriber-transports UDPv4  # as hrpose_node does
    python scripts/camera_info_latency.py --busy 2                      # with 2 CPU burners

Latency is arrival time minus the message stamp (the player stamps at publication).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hrpose_ros.ros.dds_transport import TRANSPORTS_VARIABLE  # noqa: E402
from hrpose_ros.ros.ros_session import BackgroundNode, stop_process  # noqa: E402


def _with_transports(env: dict[str, str], transports: str) -> dict[str, str]:
    env = dict(env)
    env.pop(TRANSPORTS_VARIABLE, None)
    if transports:
        env[TRANSPORTS_VARIABLE] = transports
    return env


def _burn(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """Latencies in ms per topic ('image', 'camera_info') of every message received."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415
    from sensor_msgs.msg import CameraInfo, Image  # noqa: PLC0415

    # this process's participant (created below) reads the variable from its environment
    os.environ.pop(TRANSPORTS_VARIABLE, None)
    if args.subscriber_transports:
        os.environ[TRANSPORTS_VARIABLE] = args.subscriber_transports
    arrivals: dict[str, list[float]] = {"image": [], "camera_info": []}

    def keep(topic: str):
        def callback(msg) -> None:
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            arrivals[topic].append((time.time() - stamp) * 1e3)

        return callback

    listener = BackgroundNode("camera_info_latency", domain_id=args.domain_id)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
    listener.node.create_subscription(Image, "image", keep("image"), qos)
    listener.node.create_subscription(CameraInfo, "camera_info", keep("camera_info"), qos)
    env = _with_transports(dict(os.environ), args.player_transports)
    env["ROS_DOMAIN_ID"] = str(args.domain_id)
    player_cmd = [sys.executable, "-m", "hrpose_ros.ros.player", "--bop", str(args.stream), "--once",
                  "--rate", str(args.rate), "--preload", "--max-frames", str(args.frames),
                  "--min-subscribers", "1", "--wait-subscribers", "30"]  # fmt: skip
    duration = args.frames / args.rate + 40.0
    burners = [
        multiprocessing.Process(target=_burn, args=(time.time() + duration,), daemon=True)
        for _ in range(args.busy)
    ]
    for b in burners:
        b.start()
    player = subprocess.Popen(player_cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        player.wait(timeout=duration)
        time.sleep(args.drain_s)  # a late sample may still come
    finally:
        stop_process(player)
        for b in burners:
            b.terminate()
        listener.close()
    return arrivals


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stream", type=Path, default=ROOT / "models" / "sample_stream", help="BOP folder")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--rate", type=float, default=2.0, help="frames per second")
    p.add_argument("--player-transports", default="", help="FASTDDS_BUILTIN_TRANSPORTS of the player")
    p.add_argument("--subscriber-transports", default="", help="FASTDDS_BUILTIN_TRANSPORTS of the receiver")
    p.add_argument("--busy", type=int, default=0, help="CPU-burning processes beside it (a loaded machine)")
    p.add_argument("--late-ms", type=float, default=100.0, help="a message later than this counts as late")
    p.add_argument("--drain-s", type=float, default=5.0, help="wait this long after the last frame")
    p.add_argument("--domain-id", type=int, default=87)
    args = p.parse_args(argv)
    arrivals = measure(args)
    print(
        f"player {args.player_transports or 'unset'}, receiver {args.subscriber_transports or 'unset'}, "
        f"{args.busy} CPU burners, {args.frames} frames at {args.rate:g} Hz"
    )
    print(f"| topic | received | late (> {args.late_ms:g} ms) | median ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for topic, ms in arrivals.items():
        a = np.asarray(ms)
        med, top = (f"{np.median(a):.1f}", f"{a.max():.1f}") if a.size else ("-", "-")
        print(f"| {topic} | {a.size} / {args.frames} | {int((a > args.late_ms).sum())} | {med} | {top} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

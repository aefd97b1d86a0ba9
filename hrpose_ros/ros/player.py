"""``hrpose-play``: publish a BOP image folder as Image + CameraInfo at a fixed rate.

A real rclpy publisher used by the demo, the integration tests and the node benchmark:
each frame goes out as a ``sensor_msgs/Image`` and a ``sensor_msgs/CameraInfo`` with
the same header (``--frame-id``, stamp = publication time, strictly increasing), the
intrinsics from the scene's ``scene_camera.json``. Reads the folder with the
torch-free ``data.bop`` reader.

Example::

    hrpose-play --bop data/synth/test --rate 10 --loop --frame-id camera_color_optical_frame
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from hrpose_ros.data.bop import BopError, BopImage, read_dataset
from hrpose_ros.ros.ros_messages import SUPPORTED_ENCODINGS, camera_info_msg
from hrpose_ros.runtime.encodings import encode_image, pixel_format

__all__ = ["BopPlayer", "frame_messages", "main"]

_LOG = logging.getLogger(__name__)


def frame_messages(
    bgr: np.ndarray, K: np.ndarray, header: Header, encoding: str = "bgr8", big_endian: bool = False
) -> tuple[Image, CameraInfo]:
    """The Image and CameraInfo of one frame, sharing ``header``.

    Args:
        bgr: (H, W, 3) uint8 BGR image; K: (3, 3) intrinsics, pixels.
        encoding: any of ``SUPPORTED_ENCODINGS``: the pixels a camera of that format
            would send (``runtime.encodings.encode_image``).
        big_endian: byte order of 16-bit encodings (``Image.is_bigendian``).
    """
    rows = encode_image(bgr, encoding, big_endian)
    image = Image(header=header, height=rows.shape[0], width=bgr.shape[1], encoding=encoding)
    image.is_bigendian = int(big_endian)
    image.step = rows.shape[1]
    image.data = rows.tobytes()
    info = camera_info_msg(K, bgr.shape[1], bgr.shape[0], header)
    return image, info


class BopPlayer(Node):
    """Publishes ``frames`` on ``image`` / ``camera_info`` from a timer at ``rate_hz``.

    Args:
        frames: BOP images (from ``data.bop.read_dataset``).
        rate_hz: frames per second.
        loop: start again after the last frame; otherwise stop (``done`` becomes True).
        frame_id: ``header.frame_id`` of both messages.
        encoding: published image encoding.
        reliable: reliable QoS (default) or best effort.
        preload: decode every image once up front (for high rates).
        autostart: start the timer now; else call ``start()`` (e.g. after waiting for subscribers).
    """

    def __init__(
        self,
        frames: list[BopImage],
        rate_hz: float,
        *,
        loop: bool = False,
        frame_id: str = "camera_optical_frame",
        encoding: str = "bgr8",
        reliable: bool = True,
        preload: bool = False,
        autostart: bool = True,
        node_name: str = "hrpose_player",
        **kwargs,
    ):
        super().__init__(node_name, **kwargs)
        if not frames:
            raise ValueError("no frames to play")
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        pixel_format(encoding)  # refuses an unknown encoding now, not at the first frame
        self.frames = frames
        self.loop = loop
        self.frame_id = frame_id
        self.encoding = encoding
        self.done = False
        self.published = 0
        self.log: list[tuple[int, int, int]] = []
        """(stamp ns, scene_id, im_id) of every published frame, in order."""
        self._index = 0
        self._last_stamp_ns = 0
        self._messages_cache: dict[int, tuple[Image, CameraInfo]] = {}
        self._preload = preload
        if preload:
            for i in range(len(frames)):
                self._messages(i)
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability)
        self.image_pub = self.create_publisher(Image, "image", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self._timer = self.create_timer(1.0 / rate_hz, self.publish_next)
        if not autostart:
            self._timer.cancel()

    def start(self) -> None:
        """Start publishing (when constructed with ``autostart=False``)."""
        self._timer.reset()

    def _image(self, i: int) -> np.ndarray:
        """(H, W, 3) BGR image of frame ``i``, read from disk (each time unless preloading)."""
        path = self.frames[i].rgb_path
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BopError(f"cannot read image {path}")
        return bgr

    def _messages(self, i: int) -> tuple[Image, CameraInfo]:
        """The frame's messages; built once per frame when preloading (only the header changes)."""
        if i in self._messages_cache:
            return self._messages_cache[i]
        messages = frame_messages(self._image(i), self.frames[i].K, Header(), self.encoding)
        if self._preload:
            self._messages_cache[i] = messages
        return messages

    def _stamp(self) -> Header:
        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = max(now_ns, self._last_stamp_ns + 1)
        self._last_stamp_ns = stamp_ns
        header = Header(frame_id=self.frame_id)
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        return header

    def stop(self) -> None:
        """Publish nothing more (the node stays alive for subscribers to catch up)."""
        self.done = True
        self._timer.cancel()

    def publish_next(self) -> bool:
        """Publish the next frame; return False (and set ``done``) once the sequence is over."""
        if self.done:
            return False
        if self._index >= len(self.frames):
            if not self.loop:
                self.done = True
                self._timer.cancel()
                return False
            self._index = 0
        image, info = self._messages(self._index)
        image.header = info.header = self._stamp()
        self.info_pub.publish(info)
        self.image_pub.publish(image)
        frame = self.frames[self._index]
        self.log.append((self._last_stamp_ns, frame.scene_id, frame.im_id))
        self._index += 1
        self.published += 1
        return True


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hrpose-play", description=__doc__.split("\n\n")[0])
    p.add_argument("--bop", required=True, type=Path, help="BOP dataset, split or scene folder")
    p.add_argument("--scene-ids", type=int, nargs="*", default=None, help="only these scene ids")
    p.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--loop", action="store_true", help="play the sequence forever")
    mode.add_argument("--once", action="store_true", help="play the sequence once, then exit (default)")
    p.add_argument("--frame-id", default="camera_optical_frame", help="header.frame_id of the messages")
    p.add_argument("--encoding", default="bgr8", choices=list(SUPPORTED_ENCODINGS), help="image encoding")
    p.add_argument("--image-topic", default="image", help="Image topic (default 'image')")
    p.add_argument(
        "--camera-info-topic", default="camera_info", help="CameraInfo topic (default 'camera_info')"
    )
    p.add_argument("--best-effort", action="store_true", help="best-effort QoS instead of reliable")
    p.add_argument("--preload", action="store_true", help="decode all images before playing")
    p.add_argument(
        "--wait-subscribers",
        type=float,
        default=0.0,
        metavar="SEC",
        help="wait up to SEC seconds for --min-subscribers image subscribers (0 = do not wait)",
    )
    p.add_argument("--min-subscribers", type=int, default=1, help="subscribers to wait for (default 1)")
    p.add_argument(
        "--start-delay",
        type=float,
        default=0.0,
        metavar="SEC",
        help="pause before the first frame, e.g. for the subscribers to discover this publisher too",
    )
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = no limit)")
    p.add_argument("--log-stamps", type=Path, default=None, help="write 'stamp_ns scene_id im_id' lines here")
    p.add_argument(
        "--linger",
        type=float,
        default=2.0,
        metavar="SEC",
        help="keep the publisher alive this long after the last frame, so slow or reliable "
        "subscribers still receive it (default 2)",
    )
    return p


def _wait_for_subscribers(player: BopPlayer, timeout_s: float, count: int) -> None:
    deadline = time.monotonic() + timeout_s
    while player.image_pub.get_subscription_count() < count and time.monotonic() < deadline:
        rclpy.spin_once(player, timeout_sec=0.05)
    time.sleep(0.2)
    _LOG.info("%d image subscriber(s) matched", player.image_pub.get_subscription_count())


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hrpose-play``; ROS arguments after ``--ros-args`` go to rclpy."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i:]
    args = _parser().parse_args(argv)
    try:
        frames = read_dataset(args.bop, args.scene_ids)
    except BopError as exc:
        print(f"hrpose-play: error: {exc}", file=sys.stderr)
        return 1
    remaps = ["-r", f"image:={args.image_topic}", "-r", f"camera_info:={args.camera_info_topic}"]
    rclpy.init(args=["hrpose-play", "--ros-args", *remaps, *ros_args[1:]])
    try:
        player = BopPlayer(
            frames,
            args.rate,
            loop=args.loop,
            frame_id=args.frame_id,
            encoding=args.encoding,
            reliable=not args.best_effort,
            preload=args.preload,
            autostart=False,
        )
    except (ValueError, OSError) as exc:
        print(f"hrpose-play: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    if args.wait_subscribers > 0:
        _wait_for_subscribers(player, args.wait_subscribers, args.min_subscribers)
    if args.start_delay > 0:
        time.sleep(args.start_delay)
    _LOG.info("playing %d frames from %s at %.1f Hz", len(frames), args.bop, args.rate)
    player.start()
    try:
        while rclpy.ok() and not player.done:
            rclpy.spin_once(player, timeout_sec=0.1)
            if args.max_frames and player.published >= args.max_frames:
                break
        player.stop()
        end = time.monotonic() + args.linger
        while rclpy.ok() and time.monotonic() < end:
            rclpy.spin_once(player, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _LOG.info("published %d frames", player.published)
        if args.log_stamps is not None:
            args.log_stamps.write_text("".join(f"{s} {sc} {im}\n" for s, sc, im in player.log))
        player.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

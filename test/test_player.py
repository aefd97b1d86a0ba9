"""hrpose-play: message building for every encoding, and the publishing sequence."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from std_msgs.msg import Header

from hrpose_ros.data.bop import read_dataset
from hrpose_ros.ros.player import frame_messages, main
from hrpose_ros.ros.ros_messages import SUPPORTED_ENCODINGS, camera_from_info, image_to_array
from hrpose_ros.ros.stamp_matcher import stamp_to_ns
from hrpose_ros.runtime.encodings import PIXEL_FORMATS

STREAM = Path(__file__).resolve().parent / "data" / "fixture_stream"
K = np.array([[300.0, 0.0, 159.5], [0.0, 300.0, 119.5], [0.0, 0.0, 1.0]])


@pytest.fixture
def bgr() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


LOSSLESS = ("bgr8", "rgb8", "bgra8", "rgba8", "bgr16", "rgb16", "bgra16", "rgba16")


@pytest.mark.parametrize("encoding", sorted(SUPPORTED_ENCODINGS))
def test_frame_messages_round_trip_through_the_node_conversion(bgr, encoding):
    header = Header(frame_id="cam")
    header.stamp.sec = 7
    image, info = frame_messages(bgr, K, header, encoding)
    assert image.encoding == encoding
    assert image.header == info.header
    assert image.step == PIXEL_FORMATS[encoding].row_bytes(32)
    out, enc = image_to_array(image)
    assert out.shape == bgr.shape
    as_bgr = out if enc == "bgr8" else cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    if encoding in LOSSLESS:
        np.testing.assert_array_equal(as_bgr, bgr)
    elif encoding.startswith("mono"):
        np.testing.assert_array_equal(as_bgr[:, :, 1], cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    np.testing.assert_allclose(camera_from_info(info).K, K)
    assert (info.width, info.height) == (32, 24)


def test_big_endian_frames_say_so_and_read_back(bgr):
    image, _ = frame_messages(bgr, K, Header(), "bgr16", big_endian=True)
    assert image.is_bigendian == 1
    np.testing.assert_array_equal(image_to_array(image)[0], bgr)


def test_unknown_encoding_is_refused(bgr):
    with pytest.raises(ValueError, match="nv21"):
        frame_messages(bgr, K, Header(), "nv21")


def test_missing_folder_exits_with_one_line(tmp_path, capsys):
    assert main(["--bop", str(tmp_path / "none"), "--once"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hrpose-play: error:")


@pytest.mark.ros
@pytest.mark.skipif(not STREAM.is_dir(), reason="fixture stream missing: run scripts/make_fixture_model.py")
def test_player_publishes_each_frame_once_with_increasing_stamps():
    import rclpy  # noqa: PLC0415 (ros tests only)

    from hrpose_ros.ros.player import BopPlayer  # noqa: PLC0415

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=1 + os.getpid() % 100)
    try:
        frames = read_dataset(STREAM)
        player = BopPlayer(frames, rate_hz=1000.0, frame_id="cam", context=ctx)
        sent = []
        original = player.image_pub.publish
        player.image_pub.publish = lambda msg: (sent.append(msg), original(msg))
        while player.publish_next():
            pass
        assert player.done and player.published == len(frames) == len(sent)
        stamps = [stamp_to_ns(m.header.stamp.sec, m.header.stamp.nanosec) for m in sent]
        assert all(b > a for a, b in itertools.pairwise(stamps))
        assert {m.header.frame_id for m in sent} == {"cam"}
        for msg, frame in zip(sent, frames, strict=True):
            np.testing.assert_array_equal(image_to_array(msg)[0], cv2.imread(str(frame.rgb_path)))
        player.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)

"""The node over real DDS: node, player and this test in separate processes.

One ``hrpose_node`` process (the committed fixture model, ONNX Runtime) serves the
whole module; ``hrpose-play`` publishes the fixture stream from its own process; this
process observes the outputs (and publishes the bad inputs) through its own rclpy
context, all on a domain id of their own. The node runs with tracking off, so that its
poses and TF frames are the per-frame ones the offline estimator gives (tracking:
test_node_tracking.py; camera formats: test_node_cameras.py). Order matters for one test: "no CameraInfo
yet" must run before anything publishes a CameraInfo, so it comes first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from node_fixtures import (  # noqa: E402
    FIXTURE_MODEL,
    FIXTURE_STREAM,
    ROOT,
    NodeProcess,
    Observer,
    TFMessage,
    assert_pose_equal,
    assert_same_detections,
    best_frame,
    expect_log,
    good_frame_yields_poses,
    header,
    node_command,
    node_env,
    offline_estimator,
    publish_frame,
    quat,
    running_node,
    wait_for,
    watching,
)
from node_fixtures import domain_id as _domain_id  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from hrpose_ros.data.bop import read_dataset  # noqa: E402
from hrpose_ros.geometry.camera import scale_intrinsics  # noqa: E402
from hrpose_ros.ros.player import frame_messages  # noqa: E402
from hrpose_ros.ros.stamp_matcher import stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = _domain_id(0)
PLAYED_FRAME_ID = "played_cam"

if not FIXTURE_MODEL.is_file():
    pytest.skip("fixture model missing: run scripts/make_fixture_model.py", allow_module_level=True)


@pytest.fixture(scope="module")
def frames():
    found = read_dataset(FIXTURE_STREAM)
    assert found, "fixture stream is empty"
    return found


@pytest.fixture(scope="module")
def classes() -> list[str]:
    return list(json.loads(FIXTURE_MODEL.read_text())["classes"])


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    # per-frame output (tracking off): the poses and TF frames are compared with the offline estimator
    with running_node(
        tmp_path_factory.mktemp("node") / "node.log", DOMAIN_ID, "-p", "tracking:=false"
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def observer(node, classes):
    with watching(node, classes, DOMAIN_ID) as obs:
        yield obs


@pytest.fixture(scope="module")
def good_frame(frames):
    """The fixture frame in which the estimator (offline) finds the most objects."""
    return best_frame(frames)


# ------------------------------------------------------------------ bad input (first: before any CameraInfo)


def test_image_without_any_camera_info_yet(node, observer, good_frame):
    bgr, K = good_frame
    image, _ = frame_messages(bgr, K, header(time.time_ns()))

    def publish():
        image.header = header(time.time_ns())
        observer.image_pub.publish(image)

    expect_log(node, "no CameraInfo received yet", publish)
    good_frame_yields_poses(observer, good_frame)


def test_node_chooses_udp_when_transports_unset(node, observer):
    # node_env leaves FASTDDS_BUILTIN_TRANSPORTS unset, as a user's shell does (ros.dds_transport)
    assert "FASTDDS_BUILTIN_TRANSPORTS was unset: Fast DDS uses UDPv4" in node.text(), node.text()[-3000:]


# ------------------------------------------------------------------ same as offline


def test_same_as_offline(node, observer, frames, tmp_path):
    frames_bgr = [cv2.imread(str(f.rgb_path)) for f in frames]
    log = tmp_path / "stamps.txt"
    player = subprocess.run(
        [
            sys.executable,
            "-m",
            "hrpose_ros.ros.player",
            "--bop",
            str(FIXTURE_STREAM),
            "--rate",
            "2",
            "--loop",
            "--max-frames",
            str(2 * len(frames)),
            "--frame-id",
            PLAYED_FRAME_ID,
            "--wait-subscribers",
            "20",
            "--min-subscribers",
            "2",
            "--start-delay",
            "2.0",
            "--log-stamps",
            str(log),
        ],
        cwd=ROOT,
        env=node_env(DOMAIN_ID),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert player.returncode == 0, player.stderr
    by_id = {(f.scene_id, f.im_id): i for i, f in enumerate(frames)}
    played = {
        int(st): by_id[(int(sc), int(im))] for st, sc, im in (x.split() for x in log.read_text().splitlines())
    }
    assert len(played) >= 2 * len(frames), player.stdout[-2000:]
    wait_for(lambda: all(s in observer.detections for s in played), 10.0)
    processed = [s for s in sorted(played) if s in observer.detections]
    # At 2 Hz the node keeps up; frames can still be lost by the DDS transport (best effort,
    # shared memory on a loaded machine), so half of the twice-played sequence must arrive.
    assert len(processed) >= len(frames), "node published too few frames:\n" + node.text()[-2000:]

    estimator = offline_estimator()
    total = 0
    for stamp in processed:
        array = observer.detections[stamp]
        assert array.header.frame_id == PLAYED_FRAME_ID
        assert stamp_to_ns(array.header.stamp.sec, array.header.stamp.nanosec) == stamp
        index = played[stamp]
        offline = estimator(frames_bgr[index], frames[index].K, None, "bgr8")
        want = assert_same_detections(array, offline)
        for frame_name, det in want.items():
            if det.instance == 0:
                assert wait_for(lambda c=det.class_name, s=stamp: s in observer.poses[c], 3.0)
                pose = observer.poses[det.class_name][stamp]
                assert pose.header.frame_id == PLAYED_FRAME_ID
                assert_pose_equal(pose.pose, det.R, det.t)
            if TFMessage is not None:
                assert wait_for(lambda k=(stamp, frame_name): k in observer.tf, 3.0), f"no TF {frame_name}"
                tf = observer.tf[(stamp, frame_name)]
                assert tf.header.frame_id == PLAYED_FRAME_ID
                tr = tf.transform.translation
                np.testing.assert_allclose([tr.x, tr.y, tr.z], det.t, atol=1e-6)
                q = quat(tf.transform.rotation)
                np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), det.R, atol=1e-6)
        total += len(offline)
    assert total > 0, "no detections in the played sequence: the comparison would prove nothing"


# ------------------------------------------------------------------ bad input


def test_unsupported_encoding(node, observer, good_frame):
    bgr, K = good_frame

    def publish():
        stamp = publish_frame(observer, bgr, K)
        image, _ = frame_messages(bgr, K, header(stamp + 1000))
        image.encoding = "nv21"  # a real sensor_msgs encoding the node does not convert
        observer.image_pub.publish(image)

    expect_log(node, "unsupported image encoding 'nv21'", publish)
    good_frame_yields_poses(observer, good_frame)


def test_data_shorter_than_height_times_step(node, observer, good_frame):
    bgr, K = good_frame

    def publish():
        stamp = time.time_ns()
        image, info = frame_messages(bgr, K, header(stamp))
        image.data = bytes(image.data)[: len(image.data) // 2]
        observer.info_pub.publish(info)
        observer.image_pub.publish(image)

    expect_log(node, "fewer than height*step", publish)
    good_frame_yields_poses(observer, good_frame)


def test_zero_size_image(node, observer, good_frame):
    bgr, K = good_frame

    def publish():
        stamp = time.time_ns()
        _, info = frame_messages(bgr, K, header(stamp))
        observer.info_pub.publish(info)
        observer.image_pub.publish(Image(header=header(stamp), height=0, width=0, encoding="bgr8", step=0))

    expect_log(node, "zero-size image", publish)
    good_frame_yields_poses(observer, good_frame)


@pytest.mark.parametrize(
    ("k", "fragment"),
    [([0.0] * 9, "CameraInfo K is invalid"), ([float("nan")] * 9, "CameraInfo K is invalid")],
    ids=["zeros", "nan"],
)
def test_camera_info_with_bad_k(node, observer, good_frame, k, fragment):
    bgr, K = good_frame
    before = node.text().count(fragment)

    def publish():
        publish_frame(observer, bgr, K, k=k)

    deadline = time.monotonic() + 10.0
    while node.text().count(fragment) <= before and time.monotonic() < deadline:
        publish()
        wait_for(lambda: node.text().count(fragment) > before, 1.0)
    assert node.text().count(fragment) > before, node.text()[-3000:]
    assert node.proc.poll() is None
    good_frame_yields_poses(observer, good_frame)


def test_camera_info_of_another_resolution(node, observer, good_frame):
    bgr, K = good_frame
    h, w = bgr.shape[:2]

    def publish():
        publish_frame(observer, bgr, K, width=2 * w, height=2 * h)

    expect_log(node, f"image is {w}x{h} but its CameraInfo is {2 * w}x{2 * h}", publish)
    good_frame_yields_poses(observer, good_frame)


def test_stamps_going_backwards(node, observer, good_frame):
    bgr, K = good_frame
    newest = good_frame_yields_poses(observer, good_frame)

    def publish():
        publish_frame(observer, bgr, K, stamp_ns=newest - 500_000_000)

    expect_log(node, "is not newer than the previous image", publish)
    good_frame_yields_poses(observer, good_frame)


def test_camera_info_arriving_after_its_image_is_waited_for(observer, good_frame):
    # two subscriptions, no delivery order: a busy node often sees the image first
    bgr, K = good_frame
    for _ in range(4):  # best-effort transport may lose a message
        image, info = frame_messages(bgr, K, header(time.time_ns()))
        observer.image_pub.publish(image)
        time.sleep(0.05)  # well inside camera_info_wait_s (0.2 s), well outside the 0.02 s slop
        observer.info_pub.publish(info)
        stamp = stamp_to_ns(image.header.stamp.sec, image.header.stamp.nanosec)
        if wait_for(lambda s=stamp: s in observer.detections, 5.0):
            return
    raise AssertionError("an image whose CameraInfo came 50 ms after it was never answered")


def test_huge_image_4000x3000(tmp_path, classes, good_frame):
    """A 36 MB frame is downscaled (with its K) and processed; a good frame follows.

    Its own node with reliable QoS: Fast DDS fragments a 36 MB sample, and a best-effort
    reader (the default sensor-data QoS) drops it whole, so the node would never see it.
    """
    big_node = NodeProcess(
        tmp_path / "big.log",
        DOMAIN_ID,
        "-p",
        "tracking:=false",
        "-p",
        "qos_reliability:=reliable",
        "-r",
        "__node:=hrpose_big",
        "-r",
        "image:=/big/image",
        "-r",
        "camera_info:=/big/camera_info",
    )
    obs = Observer(classes, DOMAIN_ID, node_ns="/hrpose_big", topic_prefix="/big")
    try:
        assert obs.wait_ready(), big_node.text()[-3000:]
        time.sleep(1.0)
        bgr, K = good_frame
        h, w = bgr.shape[:2]
        big = cv2.resize(bgr, (4000, 3000), interpolation=cv2.INTER_LINEAR)
        K_big = scale_intrinsics(K, 4000 / w, 3000 / h)
        stamps = []

        def publish():
            stamps.append(publish_frame(obs, big, K_big))

        expect_log(big_node, "image 4000x3000 downscaled", publish, timeout_s=30.0, dropped=False)
        assert wait_for(lambda: any(s in obs.detections for s in stamps), 10.0), "huge frame not processed"
        good_frame_yields_poses(obs, good_frame)
    finally:
        obs.close()
        big_node.stop()
    assert "Traceback" not in big_node.text()


# ------------------------------------------------------------------ start-up failures


def _corrupt_bundles(tmp_path: Path) -> dict[str, Path]:
    meta = json.loads(FIXTURE_MODEL.read_text())
    out = {"missing": tmp_path / "missing" / "nothing.json"}
    bad_json = tmp_path / "bad_json" / "fixture.json"
    bad_json.parent.mkdir()
    bad_json.write_text('{"classes": [')
    shutil.copy(FIXTURE_MODEL.with_suffix(".onnx"), bad_json.with_suffix(".onnx"))
    out["corrupt_json"] = bad_json
    for name, keep_hash in (("hash_mismatch", True), ("truncated_onnx", False)):
        path = tmp_path / name / "fixture.json"
        path.parent.mkdir()
        onnx = FIXTURE_MODEL.with_suffix(".onnx").read_bytes()
        path.with_suffix(".onnx").write_bytes(onnx[: len(onnx) // 3])
        data = dict(meta, fp16_onnx=None, fp16_onnx_sha256=None)
        if not keep_hash:
            data["onnx_sha256"] = None
        path.write_text(json.dumps(data))
        out[name] = path
    return out


@pytest.mark.parametrize("case", ["missing", "corrupt_json", "hash_mismatch", "truncated_onnx"])
def test_bad_model_exits_with_one_clear_line(tmp_path, case):
    model = _corrupt_bundles(tmp_path)[case]
    result = subprocess.run(
        node_command(str(model)),
        cwd=ROOT,
        env=node_env(DOMAIN_ID),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("hrpose_node: error:")]
    assert len(errors) == 1, result.stderr
    assert str(model.parent.name) in errors[0] or "fixture" in errors[0], errors[0]

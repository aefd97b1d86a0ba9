"""The node over real DDS: node, player and this test in separate processes.

One ``hrpose_node`` process (the committed fixture model, ONNX Runtime) serves the
whole module; ``hrpose-play`` publishes the fixture stream from its own process; this
process observes the outputs (and publishes the bad inputs) through its own rclpy
context, all on a domain id of their own. Order matters for one test: "no CameraInfo
yet" must run before anything publishes a CameraInfo, so it comes first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from hrpose_ros.data.bop import read_dataset  # noqa: E402
from hrpose_ros.geometry.camera import scale_intrinsics  # noqa: E402
from hrpose_ros.ros.player import frame_messages  # noqa: E402
from hrpose_ros.ros.ros_session import BackgroundNode, stop_process  # noqa: E402
from hrpose_ros.ros.stamp_matcher import stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_MODEL = ROOT / "test" / "data" / "fixture_model" / "fixture.json"
FIXTURE_STREAM = ROOT / "test" / "data" / "fixture_stream"
DOMAIN_ID = 101 - os.getpid() % 50
FRAME_ID = "fixture_cam"
PLAYED_FRAME_ID = "played_cam"
TF_PREFIX = "hrpose/"
NODE = "/hrpose_node"

if not FIXTURE_MODEL.is_file():
    pytest.skip("fixture model missing: run scripts/make_fixture_model.py", allow_module_level=True)

from vision_msgs.msg import Detection3DArray  # noqa: E402

try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - built by scripts/build_ros_interfaces.sh
    TFMessage = None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(DOMAIN_ID)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _qos(depth: int, reliability: ReliabilityPolicy) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability)


def _node_command(model: str, *extra: str) -> list[str]:
    params = {
        "model": model,
        "backend": "onnxruntime",
        "inference_threads": "1",
        "diagnostics_period_s": "1.0",
        "log_throttle_s": "1.0",
        "tf_prefix": TF_PREFIX,
    }
    args = [x for k, v in params.items() for x in ("-p", f"{k}:={v}")]
    return [sys.executable, "-m", "hrpose_ros.ros.node", "--ros-args", *args, *extra]


class NodeProcess:
    """``hrpose_node`` in its own process, its console output in a file."""

    def __init__(self, log_path: Path, *extra: str):
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            _node_command(str(FIXTURE_MODEL), *extra),
            cwd=ROOT,
            env=_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        code = stop_process(self.proc)
        self._log.close()
        return code


class Observer:
    """This process's view of the node: its outputs by stamp, and publishers of camera input."""

    def __init__(self, classes: list[str], node_ns: str = NODE, topic_prefix: str = ""):
        self._session = BackgroundNode("hrpose_test_observer", DOMAIN_ID)
        self.node = self._session.node
        out_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE
        )
        in_qos = _qos(20, ReliabilityPolicy.BEST_EFFORT)
        self.detections: dict[int, Detection3DArray] = {}
        self.poses: dict[str, dict[int, PoseStamped]] = defaultdict(dict)
        self.tf: dict[tuple[int, str], object] = {}
        self.detection_sub = self.node.create_subscription(
            Detection3DArray, f"{node_ns}/detections", lambda m: self._keep(self.detections, m), out_qos
        )
        for c in classes:
            self.node.create_subscription(
                PoseStamped, f"{node_ns}/poses/{c}", lambda m, c=c: self._keep(self.poses[c], m), out_qos
            )
        if TFMessage is not None:
            self.node.create_subscription(TFMessage, "/tf", self._on_tf, out_qos)
        image_topic, info_topic = f"{topic_prefix}/image", f"{topic_prefix}/camera_info"
        # A second image subscriber: the player waits for both (node and this) before playing.
        self.images: dict[int, Image] = {}
        self.node.create_subscription(Image, image_topic, lambda m: self._keep(self.images, m), in_qos)
        pub_qos = _qos(5, ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, image_topic, pub_qos)
        self.info_pub = self.node.create_publisher(CameraInfo, info_topic, pub_qos)

    @staticmethod
    def _keep(table: dict, msg) -> None:
        table[stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

    def _on_tf(self, msg) -> None:
        for t in msg.transforms:
            self.tf[(stamp_to_ns(t.header.stamp.sec, t.header.stamp.nanosec), t.child_frame_id)] = t

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """True once the node's image subscription and detections publisher are matched."""
        return wait_for(
            lambda: (
                self.image_pub.get_subscription_count() >= 1 and self.detection_sub.get_publisher_count() >= 1
            ),
            timeout_s,
        )

    def close(self) -> None:
        self._session.close()


def wait_for(predicate, timeout_s: float, period_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return bool(predicate())


def _header(stamp_ns: int) -> Header:
    h = Header(frame_id=FRAME_ID)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return h


def _offline_estimator():
    from hrpose_ros.runtime.backends import create_backend  # noqa: PLC0415
    from hrpose_ros.runtime.bundle import load_bundle  # noqa: PLC0415
    from hrpose_ros.runtime.estimator import Estimator  # noqa: PLC0415

    bundle = load_bundle(FIXTURE_MODEL)
    return Estimator(bundle, create_backend("onnxruntime", bundle, threads=1))


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
    proc = NodeProcess(tmp_path_factory.mktemp("node") / "node.log")
    yield proc
    rc = proc.stop()
    assert "Traceback" not in proc.text(), proc.text()[-3000:]
    assert rc in (0, -signal.SIGINT), proc.text()[-3000:]


@pytest.fixture(scope="module")
def observer(node, classes):
    obs = Observer(classes)
    assert obs.wait_ready(), "node did not come up:\n" + node.text()[-3000:]
    time.sleep(0.5)
    yield obs
    obs.close()


@pytest.fixture(scope="module")
def good_frame(frames):
    """The fixture frame in which the estimator (offline) finds the most objects."""
    estimator = _offline_estimator()
    images = [(cv2.imread(str(f.rgb_path)), f.K) for f in frames]
    counts = [len(estimator(bgr, K, None, "bgr8")) for bgr, K in images]
    assert max(counts) > 0, "the fixture model finds nothing in the fixture stream"
    return images[int(np.argmax(counts))]


def publish_frame(obs: Observer, bgr: np.ndarray, K: np.ndarray, stamp_ns: int | None = None, **info_fields):
    """Publish CameraInfo then Image with one stamp; return the stamp (ns)."""
    stamp_ns = time.time_ns() if stamp_ns is None else stamp_ns
    image, info = frame_messages(bgr, K, _header(stamp_ns))
    for key, value in info_fields.items():
        setattr(info, key, value)
    obs.info_pub.publish(info)
    time.sleep(0.02)
    obs.image_pub.publish(image)
    return stamp_ns


def good_frame_yields_poses(obs: Observer, good_frame, attempts: int = 4) -> int:
    """Publish the good frame until the node answers with poses for it; return its stamp."""
    bgr, K = good_frame
    for _ in range(attempts):
        stamp = publish_frame(obs, bgr, K)
        if wait_for(lambda s=stamp: s in obs.detections, 5.0):
            assert obs.detections[stamp].detections, "good frame processed but nothing detected"
            assert wait_for(lambda s=stamp: any(s in p for p in obs.poses.values()), 2.0)
            return stamp
    raise AssertionError("the node published no detections for a good frame")


def expect_log(
    node: NodeProcess, fragment: str, publish, timeout_s: float = 10.0, dropped: bool = True
) -> None:
    """Publish bad input until ``fragment`` appears in the node's log (one throttled line)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publish()
        if wait_for(lambda: fragment in node.text(), 1.0):
            break
    assert fragment in node.text(), f"no log line with {fragment!r}:\n{node.text()[-3000:]}"
    line = next(x for x in node.text().splitlines() if fragment in x)
    assert "WARN" in line and (("frame dropped" in line) == dropped), line
    assert node.proc.poll() is None, "node died:\n" + node.text()[-3000:]


# ------------------------------------------------------------------ bad input (first: before any CameraInfo)


def test_image_without_any_camera_info_yet(node, observer, good_frame):
    bgr, K = good_frame
    image, _ = frame_messages(bgr, K, _header(time.time_ns()))

    def publish():
        image.header = _header(time.time_ns())
        observer.image_pub.publish(image)

    expect_log(node, "no CameraInfo received yet", publish)
    good_frame_yields_poses(observer, good_frame)


# ------------------------------------------------------------------ same as offline


def _quat(q) -> np.ndarray:
    return np.array([q.x, q.y, q.z, q.w])


def _assert_pose_equal(pose, R: np.ndarray, t: np.ndarray) -> None:
    p = pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], t, atol=1e-6)
    np.testing.assert_allclose(Rotation.from_quat(_quat(pose.orientation)).as_matrix(), R, atol=1e-6)


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
        env=_env(),
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

    estimator = _offline_estimator()
    total = 0
    for stamp in processed:
        array = observer.detections[stamp]
        assert array.header.frame_id == PLAYED_FRAME_ID
        assert stamp_to_ns(array.header.stamp.sec, array.header.stamp.nanosec) == stamp
        index = played[stamp]
        offline = estimator(frames_bgr[index], frames[index].K, None, "bgr8")
        got = {d.id: d for d in array.detections}
        want = {f"{TF_PREFIX}{d.class_name}_{d.instance}": d for d in offline}
        assert set(got) == set(want), f"stamp {stamp}: node {sorted(got)} vs offline {sorted(want)}"
        for frame_name, det in want.items():
            hyp = got[frame_name].results[0]
            assert hyp.hypothesis.class_id == det.class_name
            assert hyp.hypothesis.score == pytest.approx(det.confidence, abs=1e-6)
            _assert_pose_equal(hyp.pose.pose, det.R, det.t)
            if det.instance == 0:
                assert wait_for(lambda c=det.class_name, s=stamp: s in observer.poses[c], 3.0)
                pose = observer.poses[det.class_name][stamp]
                assert pose.header.frame_id == PLAYED_FRAME_ID
                _assert_pose_equal(pose.pose, det.R, det.t)
            if TFMessage is not None:
                assert wait_for(lambda k=(stamp, frame_name): k in observer.tf, 3.0), f"no TF {frame_name}"
                tf = observer.tf[(stamp, frame_name)]
                assert tf.header.frame_id == PLAYED_FRAME_ID
                tr = tf.transform.translation
                np.testing.assert_allclose([tr.x, tr.y, tr.z], det.t, atol=1e-6)
                q = _quat(tf.transform.rotation)
                np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), det.R, atol=1e-6)
        total += len(offline)
    assert total > 0, "no detections in the played sequence: the comparison would prove nothing"


# ------------------------------------------------------------------ bad input


def test_unsupported_encoding(node, observer, good_frame):
    bgr, K = good_frame

    def publish():
        stamp = publish_frame(observer, bgr, K)
        image, _ = frame_messages(bgr, K, _header(stamp + 1000))
        image.encoding = "nv21"  # a real sensor_msgs encoding the node does not convert
        observer.image_pub.publish(image)

    expect_log(node, "unsupported image encoding 'nv21'", publish)
    good_frame_yields_poses(observer, good_frame)


def test_data_shorter_than_height_times_step(node, observer, good_frame):
    bgr, K = good_frame

    def publish():
        stamp = time.time_ns()
        image, info = frame_messages(bgr, K, _header(stamp))
        image.data = bytes(image.data)[: len(image.data) // 2]
        observer.info_pub.publish(info)
        observer.image_pub.publish(image)

    expect_log(node, "fewer than height*step", publish)
    good_frame_yields_poses(observer, good_frame)


def test_zero_size_image(node, observer, good_frame):
    bgr, K = good_frame

    def publish():
        stamp = time.time_ns()
        _, info = frame_messages(bgr, K, _header(stamp))
        observer.info_pub.publish(info)
        observer.image_pub.publish(Image(header=_header(stamp), height=0, width=0, encoding="bgr8", step=0))

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


def test_huge_image_4000x3000(tmp_path, classes, good_frame):
    """A 36 MB frame is downscaled (with its K) and processed; a good frame follows.

    Its own node with reliable QoS: Fast DDS fragments a 36 MB sample, and a best-effort
    reader (the default sensor-data QoS) drops it whole, so the node would never see it.
    """
    big_node = NodeProcess(
        tmp_path / "big.log",
        "-p",
        "qos_reliability:=reliable",
        "-r",
        "__node:=hrpose_big",
        "-r",
        "image:=/big/image",
        "-r",
        "camera_info:=/big/camera_info",
    )
    obs = Observer(classes, node_ns="/hrpose_big", topic_prefix="/big")
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
        _node_command(str(model)),
        cwd=ROOT,
        env=_env(),
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

"""Plumbing of the tests that run ``hrpose_node`` over real DDS (the node in its own process).

``NodeProcess`` starts the node with the committed fixture model; ``Observer`` is this
process's rclpy view of it (its outputs by stamp, publishers of camera input, and live
parameter changes through the node's ``set_parameters`` service). Each test module runs
on a ROS domain of its own (``domain_id(offset)``), so a node that is still shutting
down never answers the next module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection3DArray

from hrpose_ros.ros.dds_transport import TRANSPORTS_VARIABLE
from hrpose_ros.ros.player import frame_messages
from hrpose_ros.ros.ros_session import BackgroundNode, stop_process
from hrpose_ros.ros.stamp_matcher import stamp_to_ns

try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - built by scripts/build_ros_interfaces.sh
    TFMessage = None

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_MODEL = ROOT / "test" / "data" / "fixture_model" / "fixture.json"
FIXTURE_STREAM = ROOT / "test" / "data" / "fixture_stream"
FRAME_ID = "fixture_cam"
TF_PREFIX = "hrpose/"
NODE = "/hrpose_node"


def domain_id(offset: int = 0) -> int:
    """A ROS domain for one test module of this session (51..101)."""
    return 101 - (os.getpid() + offset) % 51


def node_env(domain: int) -> dict[str, str]:
    """The environment of a child process (node, player) on ``domain``; the node picks its
    own Fast DDS transports, as when a user starts it (ros.dds_transport)."""
    env = dict(os.environ)
    env.pop(TRANSPORTS_VARIABLE, None)
    env["ROS_DOMAIN_ID"] = str(domain)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def qos(depth: int, reliability: ReliabilityPolicy) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability)


def node_command(model: str, *extra: str) -> list[str]:
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

    def __init__(self, log_path: Path, domain: int, *extra: str):
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            node_command(str(FIXTURE_MODEL), *extra),
            cwd=ROOT,
            env=node_env(domain),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        # SIGINT, then SIGKILL after 30 s: an idle node takes 7-9 s to shut down DDS when
        # a training run loads both cores (the exit status then still says it was clean)
        code = stop_process(self.proc, timeout_s=30.0)
        self._log.close()
        return code


@contextlib.contextmanager
def running_node(log_path: Path, domain: int, *extra: str) -> Iterator[NodeProcess]:
    """A node for a test module; afterwards, it must have stopped cleanly, without a traceback."""
    proc = NodeProcess(log_path, domain, *extra)
    try:
        yield proc
    finally:
        rc = proc.stop()
    assert "Traceback" not in proc.text(), proc.text()[-3000:]
    assert rc in (0, -signal.SIGINT), proc.text()[-3000:]


@contextlib.contextmanager
def watching(node: NodeProcess, classes: list[str], domain: int) -> Iterator[Observer]:
    """An Observer of ``node``, once the node is up (matched on its image and detection topics)."""
    obs = Observer(classes, domain)
    try:
        assert obs.wait_ready(), "node did not come up:\n" + node.text()[-3000:]
        time.sleep(0.5)
        yield obs
    finally:
        obs.close()


def module_fixtures(name: str, domain: int, *extra: str):
    """The module-scoped fixtures ``node`` (``extra`` = its ROS arguments), ``observer`` and
    ``good_frame`` of a test module: ``node, observer, good_frame = module_fixtures(...)``."""

    @pytest.fixture(scope="module", name="node")
    def node_fixture(tmp_path_factory):
        with running_node(tmp_path_factory.mktemp(name) / "node.log", domain, *extra) as proc:
            yield proc

    @pytest.fixture(scope="module", name="observer")
    def observer_fixture(node):
        import json  # noqa: PLC0415

        with watching(node, list(json.loads(FIXTURE_MODEL.read_text())["classes"]), domain) as obs:
            yield obs

    @pytest.fixture(scope="module", name="good_frame")
    def good_frame_fixture():
        from hrpose_ros.data.bop import read_dataset  # noqa: PLC0415

        return best_frame(read_dataset(FIXTURE_STREAM))

    return node_fixture, observer_fixture, good_frame_fixture


class Observer:
    """This process's view of the node: its outputs by stamp, and publishers of camera input."""

    def __init__(self, classes: list[str], domain: int, node_ns: str = NODE, topic_prefix: str = ""):
        self._session = BackgroundNode("hrpose_test_observer", domain)
        self.node = self._session.node
        self.node_ns = node_ns
        out_qos = qos(100, ReliabilityPolicy.RELIABLE)
        in_qos = qos(20, ReliabilityPolicy.BEST_EFFORT)
        self.detections: dict[int, Detection3DArray] = {}
        self.tracked: dict[int, Detection3DArray] = {}
        self.poses: dict[str, dict[int, PoseStamped]] = defaultdict(dict)
        self.tf: dict[tuple[int, str], object] = {}
        self.detection_sub = self.node.create_subscription(
            Detection3DArray, f"{node_ns}/detections", lambda m: self._keep(self.detections, m), out_qos
        )
        self.node.create_subscription(
            Detection3DArray, f"{node_ns}/tracked", lambda m: self._keep(self.tracked, m), out_qos
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
        pub_qos = qos(5, ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, image_topic, pub_qos)
        self.info_pub = self.node.create_publisher(CameraInfo, info_topic, pub_qos)

    @staticmethod
    def _keep(table: dict, msg) -> None:
        table[stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

    def _on_tf(self, msg) -> None:
        for t in msg.transforms:
            self.tf[(stamp_to_ns(t.header.stamp.sec, t.header.stamp.nanosec), t.child_frame_id)] = t

    def tf_at(self, stamp_ns: int) -> dict[str, object]:
        """Child frame name -> transform, of the TF sent for one image stamp."""
        return {child: t for (stamp, child), t in list(self.tf.items()) if stamp == stamp_ns}

    def wait_ready(self, timeout_s: float = 120.0) -> bool:
        """True once the node's image subscription and detections publisher are matched."""
        return wait_for(
            lambda: (
                self.image_pub.get_subscription_count() >= 1 and self.detection_sub.get_publisher_count() >= 1
            ),
            timeout_s,
        )

    def set_parameters(self, timeout_s: float = 10.0, **values) -> list:
        """Set node parameters through its ``set_parameters`` service; the SetParametersResult list."""
        from rcl_interfaces.srv import SetParameters  # noqa: PLC0415
        from rclpy.parameter import Parameter  # noqa: PLC0415

        client = self.node.create_client(SetParameters, f"{self.node_ns}/set_parameters")
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), "no set_parameters service"
            request = SetParameters.Request(
                parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
            )
            future = client.call_async(request)
            assert wait_for(future.done, timeout_s), "set_parameters did not answer"
            return list(future.result().results)
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._session.close()


def wait_for(predicate, timeout_s: float, period_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return bool(predicate())


def header(stamp_ns: int, frame_id: str = FRAME_ID) -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return h


def offline_estimator():
    """The node's estimator, in this process (same model, backend and thread count)."""
    from hrpose_ros.runtime.backends import create_backend  # noqa: PLC0415
    from hrpose_ros.runtime.bundle import load_bundle  # noqa: PLC0415
    from hrpose_ros.runtime.estimator import Estimator  # noqa: PLC0415

    bundle = load_bundle(FIXTURE_MODEL)
    return Estimator(bundle, create_backend("onnxruntime", bundle, threads=1))


def best_frame(frames) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image, K) of the fixture frame in which the estimator (offline) finds the most objects."""
    import cv2  # noqa: PLC0415

    estimator = offline_estimator()
    images = [(cv2.imread(str(f.rgb_path)), f.K) for f in frames]
    counts = [len(estimator(bgr, K, None, "bgr8")) for bgr, K in images]
    assert max(counts) > 0, "the fixture model finds nothing in the fixture stream"
    return images[int(np.argmax(counts))]


def publish(obs: Observer, image: Image, info: CameraInfo) -> int:
    """Publish CameraInfo then Image (their headers as given); return the image stamp (ns)."""
    obs.info_pub.publish(info)
    time.sleep(0.02)
    obs.image_pub.publish(image)
    return stamp_to_ns(image.header.stamp.sec, image.header.stamp.nanosec)


def publish_frame(obs: Observer, bgr: np.ndarray, K: np.ndarray, stamp_ns: int | None = None, **info_fields):
    """Publish CameraInfo then Image with one stamp; return the stamp (ns)."""
    stamp_ns = time.time_ns() if stamp_ns is None else stamp_ns
    image, info = frame_messages(bgr, K, header(stamp_ns))
    for key, value in info_fields.items():
        setattr(info, key, value)
    return publish(obs, image, info)


def processed(obs: Observer, make_messages, attempts: int = 4, timeout_s: float = 5.0) -> int:
    """Publish ``make_messages(stamp_ns) -> (Image, CameraInfo)`` until the node answers on
    ~/detections for it (best-effort transport may lose one); return the answered stamp."""
    for _ in range(attempts):
        stamp = publish(obs, *make_messages(time.time_ns()))
        if wait_for(lambda s=stamp: s in obs.detections, timeout_s):
            return stamp
    raise AssertionError("the node published no detections for the frame")


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
    node: NodeProcess, fragment: str, publish_bad, timeout_s: float = 10.0, dropped: bool = True
) -> None:
    """Publish bad input until ``fragment`` appears in the node's log (one throttled line)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        publish_bad()
        if wait_for(lambda: fragment in node.text(), 1.0):
            break
    assert fragment in node.text(), f"no log line with {fragment!r}:\n{node.text()[-3000:]}"
    line = next(x for x in node.text().splitlines() if fragment in x)
    assert "WARN" in line and (("frame dropped" in line) == dropped), line
    assert node.proc.poll() is None, "node died:\n" + node.text()[-3000:]


def quat(q) -> np.ndarray:
    return np.array([q.x, q.y, q.z, q.w])


def assert_pose_equal(pose, R: np.ndarray, t: np.ndarray, atol: float = 1e-6) -> None:
    """A geometry_msgs Pose is (R, t)."""
    from scipy.spatial.transform import Rotation  # noqa: PLC0415

    p = pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], t, atol=atol)
    np.testing.assert_allclose(Rotation.from_quat(quat(pose.orientation)).as_matrix(), R, atol=atol)


def assert_same_detections(array: Detection3DArray, offline: list, atol: float = 1e-6) -> dict:
    """The node's Detection3DArray holds the offline detections: names, classes, scores, poses.

    Returns:
        frame name ('<prefix><class>_<instance>') -> offline detection.
    """
    got = {d.id: d for d in array.detections}
    want = {f"{TF_PREFIX}{d.class_name}_{d.instance}": d for d in offline}
    assert set(got) == set(want), f"node {sorted(got)} vs offline {sorted(want)}"
    for frame_name, det in want.items():
        hyp = got[frame_name].results[0]
        assert hyp.hypothesis.class_id == det.class_name
        assert abs(hyp.hypothesis.score - det.confidence) <= max(atol, 1e-6)
        assert_pose_equal(hyp.pose.pose, det.R, det.t, atol)
    return want

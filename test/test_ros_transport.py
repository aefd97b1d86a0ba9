"""Real rclpy nodes in two processes exchange the message types hrpose_ros publishes.

A child process runs an echo node that republishes whatever arrives on
`/hrpose_test/<kind>/ping` to `/hrpose_test/<kind>/pong`; the test process publishes from
its own node and checks that every field comes back unchanged. This goes over Fast DDS
on loopback (the session's ROS domain, see conftest.py), with geometry_msgs from the PyPI
wheels and tf2_msgs / vision_msgs built by `make setup` from their .msg files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest

from hrpose_ros.ros.ros_session import stop_process

pytestmark = pytest.mark.ros

TIMEOUT_S = 30.0
ECHO_NODE_NAME = "hrpose_test_echo"

_ECHO_NODE = f"""
import rclpy
from rclpy.node import Node
from geometry_msgs.msg import PoseStamped
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

rclpy.init()
node = Node("{ECHO_NODE_NAME}")
for kind, msg_type in (("pose", PoseStamped), ("tf", TFMessage), ("detections", Detection3DArray)):
    publisher = node.create_publisher(msg_type, "/hrpose_test/" + kind + "/pong", 10)
    node.create_subscription(msg_type, "/hrpose_test/" + kind + "/ping", publisher.publish, 10)
print("ready", flush=True)
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    pass
"""


@pytest.fixture(scope="module")
def echo_process(ros_domain_id: int) -> Iterator[subprocess.Popen[str]]:
    """The echo node, in a separate Python process of the same ROS domain."""
    process = subprocess.Popen(
        [sys.executable, "-c", _ECHO_NODE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "ROS_DOMAIN_ID": str(ros_domain_id)},
    )
    try:
        line = process.stdout.readline()  # blocks until the node exists (or the process died)
        if line.strip() != "ready":
            process.kill()
            pytest.fail(f"echo node did not start: {line!r} {process.stderr.read()}")
        yield process
    finally:
        stop_process(process)


def _round_trip(context: object, kind: str, message: object) -> object:
    """Publish `message` to the echo node until its copy comes back; return the copy."""
    import rclpy  # noqa: PLC0415
    from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415

    node = rclpy.create_node(f"hrpose_test_{kind}_client", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received: list[object] = []
    try:
        node.create_subscription(type(message), f"/hrpose_test/{kind}/pong", received.append, 10)
        publisher = node.create_publisher(type(message), f"/hrpose_test/{kind}/ping", 10)
        deadline = time.monotonic() + TIMEOUT_S
        while not received and time.monotonic() < deadline:
            publisher.publish(message)  # lost until discovery matches; then echoed
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
    assert received, f"no {type(message).__name__} came back from the echo process in {TIMEOUT_S} s"
    return received[0]


def _pose(rng: np.random.Generator) -> object:
    from geometry_msgs.msg import Point, Pose, Quaternion  # noqa: PLC0415

    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    x, y, z = rng.uniform(-2.0, 2.0, size=3)
    return Pose(
        position=Point(x=float(x), y=float(y), z=float(z)),
        orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


def _header(frame_id: str, sec: int, nanosec: int) -> object:
    from builtin_interfaces.msg import Time  # noqa: PLC0415
    from std_msgs.msg import Header  # noqa: PLC0415

    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def test_echo_node_in_another_process_is_discovered(rclpy_context, echo_process):
    import rclpy  # noqa: PLC0415

    node = rclpy.create_node("hrpose_test_graph_probe", context=rclpy_context)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while ECHO_NODE_NAME not in node.get_node_names() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ECHO_NODE_NAME in node.get_node_names()
    finally:
        node.destroy_node()
    assert echo_process.pid != os.getpid()


def test_pose_stamped_round_trips_between_processes(rclpy_context, echo_process):
    from geometry_msgs.msg import PoseStamped  # noqa: PLC0415

    rng = np.random.default_rng(7)
    sent = PoseStamped(header=_header("camera_color_optical_frame", 1_700_000_000, 123_456_789))
    sent.pose = _pose(rng)

    got = _round_trip(rclpy_context, "pose", sent)

    assert got == sent
    assert got.header.frame_id == "camera_color_optical_frame"
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert got.pose.orientation.w == sent.pose.orientation.w
    assert got.pose.position.z == sent.pose.position.z


def test_tf_message_round_trips_between_processes(rclpy_context, echo_process):
    from geometry_msgs.msg import Transform, TransformStamped, Vector3  # noqa: PLC0415
    from tf2_msgs.msg import TFMessage  # noqa: PLC0415

    rng = np.random.default_rng(11)
    transforms = []
    for index in range(3):
        pose = _pose(rng)
        transforms.append(
            TransformStamped(
                header=_header("camera_color_optical_frame", 42, 1000 * index),
                child_frame_id=f"hrpose/mug_{index}",
                transform=Transform(
                    translation=Vector3(x=pose.position.x, y=pose.position.y, z=pose.position.z),
                    rotation=pose.orientation,
                ),
            )
        )
    sent = TFMessage(transforms=transforms)

    got = _round_trip(rclpy_context, "tf", sent)

    assert got == sent
    assert [t.child_frame_id for t in got.transforms] == ["hrpose/mug_0", "hrpose/mug_1", "hrpose/mug_2"]
    assert got.transforms[2].transform.rotation.x == transforms[2].transform.rotation.x
    assert got.transforms[1].header.stamp.nanosec == 1000


def test_detection3d_array_round_trips_between_processes(rclpy_context, echo_process):
    from geometry_msgs.msg import PoseWithCovariance, Vector3  # noqa: PLC0415
    from vision_msgs.msg import (  # noqa: PLC0415
        BoundingBox3D,
        Detection3D,
        Detection3DArray,
        ObjectHypothesis,
        ObjectHypothesisWithPose,
    )

    rng = np.random.default_rng(13)
    detections = []
    for index, (class_id, score) in enumerate([("mug", 0.93), ("drill", 0.41)]):
        pose = _pose(rng)
        covariance = rng.uniform(0.0, 1e-3, size=36)
        detections.append(
            Detection3D(
                header=_header("camera_color_optical_frame", 5, 6),
                results=[
                    ObjectHypothesisWithPose(
                        hypothesis=ObjectHypothesis(class_id=class_id, score=score),
                        pose=PoseWithCovariance(pose=pose, covariance=covariance.tolist()),
                    )
                ],
                bbox=BoundingBox3D(center=pose, size=Vector3(x=0.1 * (index + 1), y=0.08, z=0.12)),
                id=f"{class_id}_{index}",
            )
        )
    sent = Detection3DArray(header=_header("camera_color_optical_frame", 5, 6), detections=detections)

    got = _round_trip(rclpy_context, "detections", sent)

    assert got == sent
    assert [d.id for d in got.detections] == ["mug_0", "drill_1"]
    hypothesis = got.detections[1].results[0].hypothesis
    assert (hypothesis.class_id, hypothesis.score) == ("drill", 0.41)
    np.testing.assert_array_equal(
        np.asarray(got.detections[0].results[0].pose.covariance),
        np.asarray(sent.detections[0].results[0].pose.covariance),
    )
    assert got.detections[1].bbox.size.x == pytest.approx(0.2, abs=0.0)

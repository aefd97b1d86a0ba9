"""The installed tf2_msgs and vision_msgs are the ones built from third_party/ros_interfaces.

`make setup` builds them from the .msg files with the rosidl wheels; these tests catch a
stale build (a .msg edited without rebuilding) and a definition that drifted from the
upstream field layout that apt ROS users get.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "third_party" / "ros_interfaces"
MESSAGES = sorted(SOURCES.glob("*/msg/*.msg"))

# The upstream field layout (ROS 2 Humble..Kilted) of the types hrpose_ros publishes.
UPSTREAM_FIELDS = {
    ("tf2_msgs", "TFMessage"): {"transforms": "sequence<geometry_msgs/TransformStamped>"},
    ("vision_msgs", "Detection3DArray"): {
        "header": "std_msgs/Header",
        "detections": "sequence<vision_msgs/Detection3D>",
    },
    ("vision_msgs", "Detection3D"): {
        "header": "std_msgs/Header",
        "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
        "bbox": "vision_msgs/BoundingBox3D",
        "id": "string",
    },
    ("vision_msgs", "ObjectHypothesisWithPose"): {
        "hypothesis": "vision_msgs/ObjectHypothesis",
        "pose": "geometry_msgs/PoseWithCovariance",
    },
    ("vision_msgs", "ObjectHypothesis"): {"class_id": "string", "score": "double"},
    ("vision_msgs", "BoundingBox3D"): {"center": "geometry_msgs/Pose", "size": "geometry_msgs/Vector3"},
    ("vision_msgs", "BoundingBox2D"): {
        "center": "vision_msgs/Pose2D",
        "size_x": "double",
        "size_y": "double",
    },
}


def _declared_fields(path: Path) -> list[str]:
    """Field names of a .msg file, in order (comments and constants left out)."""
    names = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and "=" not in line:
            names.append(line.split()[1])
    return names


def _message_class(package: str, name: str) -> type:
    return getattr(importlib.import_module(f"{package}.msg"), name)


def test_every_interface_package_has_messages():
    assert {path.parts[-3] for path in MESSAGES} == {"tf2_msgs", "vision_msgs"}


@pytest.mark.parametrize("path", MESSAGES, ids=[f"{p.parts[-3]}/{p.stem}" for p in MESSAGES])
def test_installed_message_has_the_fields_of_its_msg_file(path):
    cls = _message_class(path.parts[-3], path.stem)
    assert list(cls.get_fields_and_field_types()) == _declared_fields(path)


@pytest.mark.parametrize(
    ("key", "fields"), list(UPSTREAM_FIELDS.items()), ids=[f"{p}/{n}" for p, n in UPSTREAM_FIELDS]
)
def test_message_matches_the_upstream_layout(key, fields):
    assert _message_class(*key).get_fields_and_field_types() == fields


def test_tf2_error_keeps_the_upstream_constants():
    from tf2_msgs.msg import TF2Error  # noqa: PLC0415

    assert (TF2Error.NO_ERROR, TF2Error.LOOKUP_ERROR, TF2Error.TRANSFORM_ERROR) == (0, 1, 6)


def test_interface_sources_are_hidden_from_colcon():
    assert (ROOT / "third_party" / "COLCON_IGNORE").is_file()


def test_ament_index_finds_the_interface_packages_without_sourcing():
    from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415

    for package in ("tf2_msgs", "vision_msgs"):
        assert (Path(get_package_share_directory(package)) / "package.xml").is_file()

"""Node parameters: one source of defaults, validation naming the parameter, live threshold changes."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from hrpose_ros.geometry.decode import DecodeParams
from hrpose_ros.ros.node_params import (
    DECODE_PARAM_NAMES,
    DECODE_PARAM_SPECS,
    NODE_NAME,
    PARAM_SPECS,
    TRACKING_PARAM_SPECS,
    NodeConfigError,
    decode_param_specs,
    decode_params_from,
    tracker_params_from,
    validate_params,
)
from hrpose_ros.runtime.tracking import TrackerParams

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_MODEL = ROOT / "test" / "data" / "fixture_model" / "fixture.json"
FIXTURE_STREAM = ROOT / "test" / "data" / "fixture_stream"
SPECS = {s.name: s for s in PARAM_SPECS}


def _defaults() -> dict:
    return {s.name: s.default for s in PARAM_SPECS}


# ------------------------------------------------------------------ one source of defaults


def test_decoder_parameters_are_exactly_the_decode_params_fields_with_its_defaults():
    fields = [f.name for f in dataclasses.fields(DecodeParams)]
    assert [s.name for s in DECODE_PARAM_SPECS] == fields
    defaults = DecodeParams()
    for spec in DECODE_PARAM_SPECS:
        assert spec.default == getattr(defaults, spec.name), spec.name
        assert spec.value_range is not None, f"{spec.name} has no declared range"
        assert spec.value_range[0] <= spec.default <= spec.value_range[1]


def test_tracking_parameters_are_the_tracker_params_fields_with_its_defaults_and_ranges():
    fields = [f"tracking_{f.name}" for f in dataclasses.fields(TrackerParams)]
    assert [s.name for s in TRACKING_PARAM_SPECS] == fields
    defaults = TrackerParams()
    for spec in TRACKING_PARAM_SPECS:
        assert spec.default == getattr(defaults, spec.name.removeprefix("tracking_")), spec.name
        assert spec.value_range is not None, f"{spec.name} has no declared range"
        assert spec.value_range[0] <= spec.default <= spec.value_range[1]
        assert not spec.read_only, spec.name
        lo, hi = spec.value_range  # every value the range allows is one the tracker takes
        TrackerParams(**{spec.name.removeprefix("tracking_"): type(spec.default)(lo)})
        TrackerParams(**{spec.name.removeprefix("tracking_"): type(spec.default)(hi)})
    assert tracker_params_from({"tracking_min_hits": 2.0, "min_keypoints": 6}) == dataclasses.replace(
        defaults, min_hits=2
    )


def test_config_yaml_lists_every_parameter_with_the_node_default():
    text = (ROOT / "config" / "hrpose.yaml").read_text()
    params = yaml.safe_load(text)[NODE_NAME]["ros__parameters"]
    assert set(params) == set(SPECS) - DECODE_PARAM_NAMES
    for name, value in params.items():
        assert value == SPECS[name].default, name
        assert type(value) is type(SPECS[name].default), name
    # the decoder's are commented out, so that the model bundle's own settings apply
    commented = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s*# (\w+): (\S+)\s+#.*", line)
        if match and match[1] in DECODE_PARAM_NAMES:
            commented[match[1]] = yaml.safe_load(match[2])
    assert commented == {name: SPECS[name].default for name in DECODE_PARAM_NAMES}


def test_decoder_parameters_default_to_the_bundles_settings_with_their_types():
    specs = {s.name: s for s in decode_param_specs(DecodeParams(centroid_threshold=0.3, min_keypoints=6))}
    assert specs["centroid_threshold"].default == 0.3 and specs["min_keypoints"].default == 6
    assert specs["peak_threshold"].default == DecodeParams().peak_threshold
    assert all(type(s.default) is type(SPECS[n].default) for n, s in specs.items())
    assert specs["centroid_threshold"].description == SPECS["centroid_threshold"].description


def test_launch_defaults_agree_with_the_node():
    tree = ast.parse((ROOT / "launch" / "pose.launch.py").read_text())
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            kw = {k.arg: k.value for k in node.keywords}
            declared[ast.literal_eval(node.args[0])] = kw["default_value"]
    assert ast.literal_eval(declared["backend"]) == SPECS["backend"].default
    assert "hrpose.yaml" in ast.unparse(declared["params_file"])


def test_every_parameter_is_described_and_model_backend_catalogue_are_read_only():
    for spec in PARAM_SPECS:
        assert spec.description.strip(), spec.name
    for name in ("model", "backend", "catalogue", "engine_cache_dir"):
        assert SPECS[name].read_only, name
    for spec in DECODE_PARAM_SPECS:
        assert not spec.read_only, spec.name


def test_decode_params_from_values_converts_types():
    params = decode_params_from({"peak_threshold": 1, "min_keypoints": 6.0, "backend": "auto"})
    assert params.peak_threshold == 1.0 and isinstance(params.peak_threshold, float)
    assert params.min_keypoints == 6 and isinstance(params.min_keypoints, int)


# ------------------------------------------------------------------ validation names the parameter


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("backend", "cuda"),
        ("camera_info_mode", "nearest"),
        ("qos_reliability", "fast"),
        ("model", ""),
        ("classes", []),
        ("tf_prefix", "/abs"),
        ("peak_threshold", 1.5),
        ("min_keypoints", 2),
        ("tf_frames", "instances"),
        ("fallback_frame_id", "/camera"),
        ("tracking_pose_gain", 0.0),
        ("tracking_max_misses", 0),
    ],
)
def test_bad_value_is_rejected_naming_the_parameter(name, value):
    values = {**_defaults(), "model": "m.json", name: value}
    with pytest.raises(NodeConfigError, match=f"'{name}'"):
        validate_params(values)


def test_default_values_with_a_model_are_valid():
    validate_params({**_defaults(), "model": "m.json"})


# ------------------------------------------------------------------ the node in-process


@pytest.fixture
def context():
    rclpy = pytest.importorskip("rclpy")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=1 + os.getpid() % 100)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _node(context, **overrides):
    from rclpy.parameter import Parameter  # noqa: PLC0415 (ros tests only)

    from hrpose_ros.ros.node import HRPoseNode  # noqa: PLC0415

    params = [Parameter(k, value=v) for k, v in overrides.items()]
    return HRPoseNode(context=context, parameter_overrides=params)


@pytest.mark.ros
def test_node_refuses_out_of_range_threshold_naming_it(context):
    from rclpy.exceptions import ParameterException  # noqa: PLC0415

    with pytest.raises(ParameterException, match="peak_threshold"):
        _node(context, model=str(FIXTURE_MODEL), backend="onnxruntime", peak_threshold=2.0)


@pytest.mark.ros
def test_node_refuses_unknown_backend_naming_it(context):
    with pytest.raises(NodeConfigError, match="'backend'"):
        _node(context, model="m.json", backend="cuda")


@pytest.mark.ros
def test_node_refuses_missing_model_naming_the_file(context, tmp_path):
    from hrpose_ros.runtime.bundle import BundleError  # noqa: PLC0415

    missing = tmp_path / "nothing.json"
    with pytest.raises(BundleError, match=r"nothing\.json"):
        _node(context, model=str(missing))


def _fixture_model_with_decode(directory: Path, decode: dict) -> Path:
    """A copy of the fixture bundle in ``directory`` whose metadata holds ``decode`` settings."""
    for path in FIXTURE_MODEL.parent.iterdir():
        shutil.copy(path, directory / path.name)
    model = directory / FIXTURE_MODEL.name
    metadata = json.loads(model.read_text())
    metadata["decode"] = decode
    model.write_text(json.dumps(metadata))
    return model


needs_fixture = pytest.mark.skipif(
    not FIXTURE_MODEL.is_file(), reason="fixture model missing: run scripts/make_fixture_model.py"
)


@pytest.fixture
def fixture_node(context):
    """The node with the fixture model (ONNX Runtime, one thread), destroyed afterwards."""
    node = _node(context, model=str(FIXTURE_MODEL), backend="onnxruntime", inference_threads=1)
    yield node
    node.destroy_node()


def _frame_messages(stamp_sec: int):
    """(Image, CameraInfo) of every fixture frame, stamped ``stamp_sec + i``."""
    from std_msgs.msg import Header  # noqa: PLC0415

    from hrpose_ros.data.bop import read_dataset  # noqa: PLC0415
    from hrpose_ros.ros.player import frame_messages  # noqa: PLC0415

    out = []
    for i, frame in enumerate(read_dataset(FIXTURE_STREAM)):
        header = Header(frame_id="cam")
        header.stamp.sec = stamp_sec + i
        out.append(frame_messages(cv2.imread(str(frame.rgb_path)), frame.K, header))
    return out


def _process(node, image, info) -> list:
    node._on_camera_info(info)
    return node.process_image(image)


def _best_frame(node) -> tuple[int, int]:
    """(index of the fixture frame with the most detections, their number), through the node."""
    counts = [len(_process(node, image, info)) for image, info in _frame_messages(10)]
    assert max(counts) > 0, "the fixture model finds nothing in the fixture stream"
    return int(np.argmax(counts)), max(counts)


@pytest.mark.ros
@needs_fixture
def test_node_takes_the_bundles_decoder_settings_unless_a_parameter_overrides_them(context, tmp_path):
    model = _fixture_model_with_decode(tmp_path, {"centroid_threshold": 0.35})
    node = _node(context, model=str(model), backend="onnxruntime", inference_threads=1)
    try:
        assert node.get_parameter("centroid_threshold").value == 0.35
        assert node._estimator.decode_params.centroid_threshold == 0.35
        assert node.get_parameter("peak_threshold").value == DecodeParams().peak_threshold
    finally:
        node.destroy_node()
    node = _node(
        context, model=str(model), backend="onnxruntime", inference_threads=1, centroid_threshold=0.2
    )
    try:
        assert node.get_parameter("centroid_threshold").value == 0.2
        assert node._estimator.decode_params.centroid_threshold == 0.2
    finally:
        node.destroy_node()


@pytest.mark.ros
@needs_fixture
def test_node_refuses_a_bundle_decoder_setting_out_of_its_range_naming_the_bundle(context, tmp_path):
    from hrpose_ros.ros.node import ModelLoadError  # noqa: PLC0415

    # DecodeParams takes it, the node's range does not
    model = _fixture_model_with_decode(tmp_path, {"max_peaks_per_map": 5000})
    with pytest.raises(ModelLoadError, match=r"fixture\.json.*'decode'.*'max_peaks_per_map'"):
        _node(context, model=str(model), backend="onnxruntime", inference_threads=1)


@pytest.mark.ros
@needs_fixture
def test_live_threshold_change_takes_effect(fixture_node):
    from rclpy.parameter import Parameter  # noqa: PLC0415

    node = fixture_node
    best, _ = _best_frame(node)
    result = node.set_parameters([Parameter("centroid_threshold", value=1.0)])[0]
    assert result.successful
    assert node._estimator.decode_params.centroid_threshold == 1.0
    image, info = _frame_messages(100)[best]
    assert _process(node, image, info) == []


@pytest.mark.ros
@needs_fixture
def test_live_change_out_of_range_or_read_only_is_rejected(fixture_node):
    from rclpy.parameter import Parameter  # noqa: PLC0415

    node = fixture_node
    bad = node.set_parameters([Parameter("angle_threshold_deg", value=500.0)])[0]
    assert not bad.successful and "angle_threshold_deg" in bad.reason
    frozen = node.set_parameters([Parameter("model", value="other.json")])[0]
    assert not frozen.successful
    unknown = node.set_parameters([Parameter("classes", value=["nope"])])[0]
    assert not unknown.successful and "nope" in unknown.reason
    assert node.get_parameter("angle_threshold_deg").value == DecodeParams().angle_threshold_deg
    assert np.isclose(node._estimator.decode_params.angle_threshold_deg, DecodeParams().angle_threshold_deg)


@pytest.mark.ros
@needs_fixture
def test_tracking_switch_and_gains_are_live_and_declared_with_ranges(fixture_node):
    from rclpy.parameter import Parameter  # noqa: PLC0415

    node = fixture_node
    descriptor = node.describe_parameter("tracking_pose_gain")
    assert descriptor.description and not descriptor.read_only
    assert (
        descriptor.floating_point_range[0].from_value,
        descriptor.floating_point_range[0].to_value,
    ) == (
        0.01,
        1.0,
    )
    assert node.describe_parameter("tracking_min_hits").integer_range[0].to_value == 100
    assert node._tracker is not None  # on by default
    assert node.set_parameters([Parameter("tracking_pose_gain", value=0.5)])[0].successful
    assert node._tracker.params.pose_gain == 0.5
    assert node.set_parameters([Parameter("tracking", value=False)])[0].successful
    assert node._tracker is None
    assert node.set_parameters([Parameter("tracking", value=True)])[0].successful
    assert node._tracker is not None and node._tracker.params.pose_gain == 0.5
    assert not node.set_parameters([Parameter("tracking_min_hits", value=0)])[0].successful
    assert not node.set_parameters([Parameter("tf_frames", value="both")])[0].successful


@pytest.mark.ros
@needs_fixture
def test_tracking_turns_repeated_frames_into_tracks_in_process(fixture_node):
    """The node's own tracker, fed by process_image: confirmed after min_hits frames, ids kept."""
    from rclpy.parameter import Parameter  # noqa: PLC0415

    node = fixture_node
    best, count = _best_frame(node)
    for on in (False, True):  # off and on again: a fresh tracker
        assert node.set_parameters([Parameter("tracking", value=on)])[0].successful
    frames = [_frame_messages(100 + k)[best] for k in range(TrackerParams().min_hits)]
    results = [node._estimate(image) for image, info in frames if node._on_camera_info(info) is None]
    assert results[-2].tracks == []  # not yet confirmed
    ids = sorted((t.class_name, t.track_id) for t in results[-1].tracks)
    assert len(ids) == count
    assert results[-1].header.frame_id == "cam"

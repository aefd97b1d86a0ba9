"""The node's parameter table: names, defaults, descriptions, ranges, and one validation step.

Kept apart from ``node.py`` so that the table can be read (by tests, docs and the
launch file check) without starting ROS. Decoder thresholds take their defaults from
``geometry.decode.DecodeParams`` and the ``tracking_*`` parameters from
``runtime.tracking.TrackerParams``, the one source of those defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hrpose_ros.geometry.decode import DecodeParams
from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS
from hrpose_ros.runtime.tracking import TrackerParams

__all__ = [
    "BACKENDS",
    "CAMERA_INFO_MODES",
    "DECODE_PARAM_NAMES",
    "DECODE_PARAM_SPECS",
    "NODE_NAME",
    "PARAM_SPECS",
    "QOS_RELIABILITIES",
    "TF_FRAMES",
    "TRACKING_PARAM_SPECS",
    "NodeConfigError",
    "ParamSpec",
    "decode_param_specs",
    "decode_params_from",
    "tracker_params_from",
    "validate_params",
]

NODE_NAME = "hrpose_node"
"""Default node name; ``config/hrpose.yaml`` keys its parameters under it."""

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
CAMERA_INFO_MODES = ("approximate", "latest")
QOS_RELIABILITIES = ("best_effort", "reliable")
TF_FRAMES = ("tracks", "detections")
TRACKING_PREFIX = "tracking_"


class NodeConfigError(ValueError):
    """A node parameter has an unusable value; the message names the parameter."""


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    ``value_range`` is (from, to) inclusive for numbers (a ROS Floating/IntegerRange);
    ``choices`` restricts strings; ``read_only`` parameters are fixed after start-up.
    """

    name: str
    default: Any
    description: str
    read_only: bool = False
    value_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


_DECODE_DOCS: dict[str, tuple[str, tuple[float, float] | None]] = {
    "peak_threshold": ("Minimum belief-map value of a corner keypoint peak (0..1).", (0.0, 1.0)),
    "centroid_threshold": (
        "Minimum belief-map value of a centroid peak, i.e. of an instance (0..1).",
        (0.0, 1.0),
    ),
    "angle_threshold_deg": (
        "Largest angle in degrees between a corner's predicted vector and the direction to a centroid.",
        (0.0, 180.0),
    ),
    "min_keypoints": (
        "Fewest keypoints (of 9) an instance needs before PnP; fewer are dropped.",
        (4, NUM_KEYPOINTS),
    ),
    "smoothing_sigma": (
        "Gaussian smoothing (output pixels) of belief maps before peak search; 0 = off.",
        (0.0, 10.0),
    ),
    "refine_radius": ("Half-size (output pixels) of the window of the sub-pixel peak fit.", (1, 10)),
    "max_peaks_per_map": ("Strongest peaks kept per belief map (bounds decoding time).", (1, 4096)),
    "position_tolerance_px": (
        "Peak position uncertainty (output pixels) forgiven in the angle test near a centroid.",
        (0.0, 10.0),
    ),
    "snap_radius_px": (
        "Models with corner offsets: a corner placed by the offsets moves to the nearest corner peak "
        "within this distance (output pixels); 0 keeps the placed corners.",
        (0.0, 20.0),
    ),
}
"""Descriptions and ranges of the decoder fields; defaults come from ``DecodeParams()``."""


_TRACKING_DOCS: dict[str, tuple[str, tuple[float, float]]] = {
    "min_hits": (
        "Consecutive detections before a track is confirmed, gets its id and is published.",
        (1, 100),
    ),
    "max_misses": (
        "Consecutive frames without a detection after which a confirmed track ends (its id is never "
        "reused); a shorter occlusion keeps the id.",
        (1, 1000),
    ),
    "max_distance": (
        "Largest distance in metres between a track's predicted position and a detection it may take.",
        (0.001, 10.0),
    ),
    "rotation_weight": (
        "Association cost in metres per radian of rotation difference (0 = by position only).",
        (0.0, 1.0),
    ),
    "pose_gain": (
        "Filter gain: the share of the gap between prediction and detection a frame closes, for "
        "position and rotation (1 = no smoothing).",
        (0.01, 1.0),
    ),
    "velocity_gain": (
        "Filter gain of the linear and angular velocities (0 = no motion model: smoothing lags).",
        (0.0, 1.0),
    ),
    "jump_distance": (
        "A detection farther than this (metres) from the track's prediction is held back one frame, "
        "and accepted if the next detection confirms it.",
        (0.001, 10.0),
    ),
    "jump_angle_deg": ("The same gate for the rotation, in degrees.", (1.0, 180.0)),
}
"""Descriptions and ranges of the tracker fields; defaults come from ``TrackerParams()``."""


def _dataclass_specs(
    cls: type, docs: Mapping[str, tuple[str, Any]], prefix: str = ""
) -> tuple[ParamSpec, ...]:
    """One live parameter per field of the dataclass ``cls``, with the field's default."""
    defaults = cls()
    specs = []
    for f in dataclasses.fields(cls):
        description, value_range = docs.get(
            f.name, (f"Parameter '{f.name}' (see {cls.__module__}.{cls.__name__}).", None)
        )
        specs.append(
            ParamSpec(prefix + f.name, getattr(defaults, f.name), description, value_range=value_range)
        )
    return tuple(specs)


DECODE_PARAM_SPECS: tuple[ParamSpec, ...] = _dataclass_specs(DecodeParams, _DECODE_DOCS)
"""One parameter per ``DecodeParams`` field, changeable at run time; the node declares them
with the model bundle's own settings as defaults (:func:`decode_param_specs`)."""

DECODE_PARAM_NAMES = frozenset(spec.name for spec in DECODE_PARAM_SPECS)


def decode_param_specs(defaults: DecodeParams) -> tuple[ParamSpec, ...]:
    """The decoder parameters with ``defaults`` (a bundle's ``decode_params``) as defaults.

    Why: the right thresholds belong to the network. A ``corner_offsets`` network makes
    hundreds of weak false centroid peaks at ``DecodeParams``' 0.1 that a threshold of 0.3
    removes at no loss of accuracy (README), so its bundle says 0.3; a parameter set in a
    params file or on the command line still wins.
    """
    return tuple(
        dataclasses.replace(spec, default=type(spec.default)(getattr(defaults, spec.name)))
        for spec in DECODE_PARAM_SPECS
    )


TRACKING_PARAM_SPECS: tuple[ParamSpec, ...] = _dataclass_specs(TrackerParams, _TRACKING_DOCS, TRACKING_PREFIX)
"""``tracking_<field>`` per ``TrackerParams`` field, changeable at run time."""

PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "model",
        "",
        "Model bundle: path to NAME.json or NAME.onnx (metadata JSON beside the ONNX file).",
        read_only=True,
    ),
    ParamSpec(
        "backend",
        "auto",
        "Inference backend: tensorrt, onnxruntime, torch, or auto (the fastest available).",
        read_only=True,
        choices=BACKENDS,
    ),
    ParamSpec(
        "engine_cache_dir",
        "",
        "Directory of cached TensorRT engines ('' = the backend's default cache).",
        read_only=True,
    ),
    ParamSpec(
        "inference_threads",
        0,
        "CPU threads of the ONNX Runtime backend (0 = the runtime's default).",
        read_only=True,
        value_range=(0, 256),
    ),
    ParamSpec(
        "catalogue",
        "",
        "Object catalogue (objects.yaml) the model must match; gives mesh markers and colours ('' = none).",
        read_only=True,
    ),
    *DECODE_PARAM_SPECS,
    ParamSpec(
        "min_score", 0.0, "Minimum confidence (0..1) of a published detection.", value_range=(0.0, 1.0)
    ),
    ParamSpec("classes", ["*"], "Class names to publish; ['*'] publishes every class of the model."),
    ParamSpec("publish_tf", True, "Broadcast a TF frame per tracked (or detected) object."),
    ParamSpec("tf_prefix", "hrpose/", "Prefix of the TF child frames '<prefix><class>_<id>'."),
    ParamSpec(
        "tf_frames",
        "tracks",
        "TF child frames: 'tracks' = one per confirmed track, '<prefix><class>_<track id>' with the "
        "filtered pose (needs tracking); 'detections' = one per detection of the frame, "
        "'<prefix><class>_<i>' numbered by confidence (the names can swap between frames).",
        choices=TF_FRAMES,
    ),
    ParamSpec(
        "tracking",
        True,
        "Track objects across frames: stable ids and filtered poses on ~/tracked, ~/poses/<class> "
        "(the best track) and TF. False: per-frame output only (~/poses/<class> = the best detection).",
    ),
    *TRACKING_PARAM_SPECS,
    ParamSpec(
        "fallback_frame_id",
        "",
        "Frame id given to the outputs of an image whose header.frame_id is empty; '' = publish them "
        "with the empty frame id and broadcast no TF for them (tf2 refuses an empty parent frame).",
    ),
    ParamSpec(
        "image_is_rectified",
        False,
        "True if the image topic is rectified (image_rect): use CameraInfo P and no distortion. "
        "False for image_raw: use K and the D coefficients.",
    ),
    ParamSpec(
        "camera_info_mode",
        "approximate",
        "How an image finds its CameraInfo: 'approximate' (nearest stamp within camera_info_slop_s) "
        "or 'latest' (the last one received).",
        choices=CAMERA_INFO_MODES,
    ),
    ParamSpec(
        "camera_info_slop_s",
        0.02,
        "Largest stamp difference in seconds between an image and its CameraInfo (approximate mode).",
        value_range=(0.0, 10.0),
    ),
    ParamSpec(
        "camera_info_wait_s",
        0.2,
        "How long an image waits for its CameraInfo: the two topics are separate subscriptions "
        "and may be delivered in either order, most often the wrong one on a busy CPU.",
        value_range=(0.0, 10.0),
    ),
    ParamSpec(
        "max_image_pixels",
        3840 * 2160,
        "Images with more pixels are downscaled (with their intrinsics) to this many before "
        "inference; 0 = never.",
        value_range=(0, 1_000_000_000),
    ),
    ParamSpec(
        "qos_reliability",
        "best_effort",
        "Reliability of the image and camera_info subscriptions (best_effort = sensor-data QoS, "
        "which also accepts reliable publishers).",
        read_only=True,
        choices=QOS_RELIABILITIES,
    ),
    ParamSpec("qos_depth", 5, "History depth of the image and camera_info subscriptions.", True, (1, 1000)),
    ParamSpec(
        "log_throttle_s",
        5.0,
        "At most one warning per bad-input cause (encoding, camera_info, ...) in this many seconds.",
        read_only=True,
        value_range=(0.0, 3600.0),
    ),
    ParamSpec(
        "diagnostics_period_s",
        5.0,
        "Seconds between diagnostics (fps, drops, per-stage latency) on /diagnostics and in the log.",
        read_only=True,
        value_range=(0.1, 3600.0),
    ),
)
"""Every parameter of the node, in declaration order."""


def _dataclass_from(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from parameter values (missing fields keep their defaults)."""
    defaults = cls()
    kwargs = {}
    for f in dataclasses.fields(cls):
        if prefix + f.name in values:
            value, default = values[prefix + f.name], getattr(defaults, f.name)
            kwargs[f.name] = type(default)(value) if isinstance(default, (int, float)) else value
    return dataclasses.replace(defaults, **kwargs)


def decode_params_from(values: Mapping[str, Any]) -> DecodeParams:
    """``DecodeParams`` from parameter values (missing fields keep their defaults)."""
    return _dataclass_from(DecodeParams, values)


def tracker_params_from(values: Mapping[str, Any]) -> TrackerParams:
    """``TrackerParams`` from the ``tracking_*`` parameter values (missing ones keep their defaults)."""
    return _dataclass_from(TrackerParams, values, TRACKING_PREFIX)


def validate_params(values: Mapping[str, Any]) -> None:
    """Check parameter values the ROS descriptors cannot express.

    Raises:
        NodeConfigError: naming the first bad parameter and what it must be.
    """
    specs = {s.name: s for s in PARAM_SPECS}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            continue
        if spec.choices is not None and value not in spec.choices:
            raise NodeConfigError(f"parameter '{name}' must be one of {list(spec.choices)}, got {value!r}")
        if spec.value_range is not None and not spec.value_range[0] <= value <= spec.value_range[1]:
            lo, hi = spec.value_range
            raise NodeConfigError(f"parameter '{name}' must be within [{lo}, {hi}], got {value!r}")
    if "model" in values and not str(values["model"]).strip():
        raise NodeConfigError("parameter 'model' is empty: set it to a model bundle (models/NAME.json)")
    if "classes" in values:
        classes = list(values["classes"])
        if not classes or any(not str(c).strip() for c in classes):
            raise NodeConfigError(f"parameter 'classes' must list class names or be ['*'], got {classes}")
    for name in ("tf_prefix", "fallback_frame_id"):
        if str(values.get(name, "")).startswith("/"):
            raise NodeConfigError(
                f"parameter '{name}' must not start with '/' (tf2 frame ids), got {values[name]!r}"
            )

"""The node's parameter table: names, defaults, descriptions, ranges, and one validation step.

Kept apart from ``node.py`` so that the table can be read (by tests, docs and the
launch file check) without starting ROS. Decoder thresholds take their defaults from
``geometry.decode.DecodeParams``, the one source of those defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hrpose_ros.geometry.decode import DecodeParams
from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS

__all__ = [
    "BACKENDS",
    "CAMERA_INFO_MODES",
    "DECODE_PARAM_SPECS",
    "NODE_NAME",
    "PARAM_SPECS",
    "QOS_RELIABILITIES",
    "NodeConfigError",
    "ParamSpec",
    "decode_params_from",
    "validate_params",
]

NODE_NAME = "hrpose_node"
"""Default node name; ``config/hrpose.yaml`` keys its parameters under it."""

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
CAMERA_INFO_MODES = ("approximate", "latest")
QOS_RELIABILITIES = ("best_effort", "reliable")


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
}
"""Descriptions and ranges of the decoder fields; defaults come from ``DecodeParams()``."""


def _decode_specs() -> tuple[ParamSpec, ...]:
    defaults = DecodeParams()
    specs = []
    for f in dataclasses.fields(DecodeParams):
        description, value_range = _DECODE_DOCS.get(
            f.name, (f"Decoder parameter '{f.name}' (see hrpose_ros.geometry.decode.DecodeParams).", None)
        )
        specs.append(ParamSpec(f.name, getattr(defaults, f.name), description, value_range=value_range))
    return tuple(specs)


DECODE_PARAM_SPECS: tuple[ParamSpec, ...] = _decode_specs()
"""One parameter per ``DecodeParams`` field, changeable at run time."""

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
    ParamSpec("publish_tf", True, "Broadcast a TF frame per detected instance."),
    ParamSpec("tf_prefix", "hrpose/", "Prefix of the TF child frames '<prefix><class>_<i>'."),
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


def decode_params_from(values: Mapping[str, Any]) -> DecodeParams:
    """``DecodeParams`` from parameter values (missing fields keep their defaults)."""
    fields = {f.name: f for f in dataclasses.fields(DecodeParams)}
    kwargs = {}
    for name, value in values.items():
        if name in fields:
            default = getattr(DecodeParams(), name)
            kwargs[name] = type(default)(value) if isinstance(default, (int, float)) else value
    return dataclasses.replace(DecodeParams(), **kwargs)


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
    if str(values.get("tf_prefix", "")).startswith("/"):
        raise NodeConfigError(f"parameter 'tf_prefix' must not start with '/', got {values['tf_prefix']!r}")

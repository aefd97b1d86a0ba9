"""Model bundle: an ONNX file plus the metadata a deployment needs to trust it.

``models/NAME.onnx`` (FP32), optionally ``models/NAME.fp16.onnx`` (for TensorRT 11
strongly typed builds) and ``models/NAME.json``. The metadata carries what the network
was trained with (classes, keypoint order, input size, normalisation, stride, the
objects' 3D keypoints) so that a node can refuse a model that does not match its
configuration before it publishes a single wrong pose.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from hrpose_ros.geometry.decode import DecodeError, DecodeParams
from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS, keypoint_names
from hrpose_ros.geometry.targets import DEFAULT_OFFSET_SCALE, TO_CENTROID, VECTOR_FIELDS

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "BundleError",
    "BundleMismatchError",
    "ModelBundle",
    "check_against_catalogue",
    "load_bundle",
    "parse_decode_settings",
    "save_bundle_metadata",
    "select_for_bundle",
    "sha256_file",
]

_LOG = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
"""Version of the metadata layout; bumped when a field changes meaning."""

_REQUIRED_KEYS = (
    "classes",
    "object_ids",
    "keypoint_order",
    "input_size",
    "mean",
    "std",
    "stride",
    "keypoints_3d",
    "diameters",
    "symmetric",
)

_KEYPOINT_TOLERANCE_M = 1e-3
"""3D keypoints of the bundle and the catalogue must agree to 1 mm."""


class BundleError(ValueError):
    """A model bundle file is missing, corrupt or inconsistent (the message names the file)."""


class BundleMismatchError(BundleError):
    """The bundle was trained for other objects than the configured catalogue."""


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file (used for the bundle check and the engine cache key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelBundle:
    """Metadata of an exported network plus the paths of its files.

    ``keypoints_3d`` is (C, 9, 3) float64 metres in ``Keypoint`` order; ``diameters``
    (C,) metres; ``input_size`` is (W, H) pixels of the network input.
    """

    onnx_path: Path
    metadata_path: Path
    classes: tuple[str, ...]
    object_ids: tuple[int, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stride: int
    keypoints_3d: np.ndarray
    diameters: np.ndarray
    symmetric: tuple[bool, ...]
    keypoint_order: tuple[str, ...] = field(default_factory=lambda: tuple(keypoint_names()))
    vector_field: str = TO_CENTROID
    """What the ``vectors`` output holds (``geometry.targets.VECTOR_FIELDS``); bundles
    written before the field existed hold the paper's ``to_centroid``."""
    offset_scale: float = DEFAULT_OFFSET_SCALE
    """Output pixels per unit of a ``corner_offsets`` output."""
    decode: dict[str, Any] = field(default_factory=dict)
    """Decoder settings that belong to this network (``DecodeParams`` field -> value), e.g.
    the centroid threshold at which its false peaks stop and its recall does not drop yet;
    fields not named keep ``DecodeParams``' defaults. The estimator starts from them, and
    the node declares its decoder parameters with them as defaults."""
    input_name: str = "image"
    output_names: tuple[str, str] = ("belief", "vectors")
    dynamic_batch: bool = False
    onnx_sha256: str | None = None
    fp16_onnx_path: Path | None = None
    fp16_onnx_sha256: str | None = None
    model_name: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Bundle name: the metadata file's stem (``models/NAME.json`` -> ``NAME``)."""
        return self.metadata_path.stem

    @property
    def decode_params(self) -> DecodeParams:
        """``DecodeParams`` with this network's ``decode`` settings."""
        return DecodeParams(**self.decode)

    @property
    def num_classes(self) -> int:
        """Number of object classes C the network predicts."""
        return len(self.classes)

    @property
    def input_width(self) -> int:
        """Network input width W in pixels."""
        return self.input_size[0]

    @property
    def input_height(self) -> int:
        """Network input height H in pixels."""
        return self.input_size[1]

    @property
    def output_size(self) -> tuple[int, int]:
        """(w, h) of the belief/vector maps: the input size divided by the stride."""
        return self.input_width // self.stride, self.input_height // self.stride

    def to_json_dict(self) -> dict[str, Any]:
        """The metadata as written to ``NAME.json`` (paths relative to the JSON file)."""
        return {
            "format_version": BUNDLE_FORMAT_VERSION,
            "onnx": self.onnx_path.name,
            "onnx_sha256": self.onnx_sha256,
            "fp16_onnx": self.fp16_onnx_path.name if self.fp16_onnx_path else None,
            "fp16_onnx_sha256": self.fp16_onnx_sha256,
            "model_name": self.model_name,
            "input_name": self.input_name,
            "output_names": list(self.output_names),
            "dynamic_batch": self.dynamic_batch,
            "classes": list(self.classes),
            "object_ids": [int(i) for i in self.object_ids],
            "keypoint_order": list(self.keypoint_order),
            "input_size": [int(v) for v in self.input_size],
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "stride": int(self.stride),
            "vector_field": self.vector_field,
            "offset_scale": float(self.offset_scale),
            "decode": dict(self.decode),
            "keypoints_3d": np.asarray(self.keypoints_3d, dtype=np.float64).tolist(),
            "diameters": [float(v) for v in self.diameters],
            "symmetric": [bool(v) for v in self.symmetric],
            "training": self.training,
            "metrics": self.metrics,
        }


def save_bundle_metadata(bundle: ModelBundle) -> Path:
    """Write ``bundle.metadata_path`` (JSON) and return it."""
    bundle.metadata_path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(bundle.to_json_dict(), indent=2, default=_json_default)
    bundle.metadata_path.write_text(text + "\n")
    return bundle.metadata_path


def _json_default(value: Any) -> Any:
    """numpy/torch scalars and arrays in training info or metrics -> plain JSON values."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _resolve_paths(path: Path) -> Path:
    """Metadata path for ``NAME``, ``NAME.json``, ``NAME.onnx`` or ``NAME.fp16.onnx``."""
    name = path.name
    if name.endswith(".fp16.onnx"):
        return path.with_name(name[: -len(".fp16.onnx")] + ".json")
    if path.suffix in (".onnx", ".json"):
        return path.with_suffix(".json")
    return path.with_name(name + ".json")


def _read_json(metadata_path: Path) -> dict[str, Any]:
    if not metadata_path.is_file():
        raise BundleError(f"model bundle metadata file not found: {metadata_path}")
    try:
        data = json.loads(metadata_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"model bundle metadata file {metadata_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"model bundle metadata file {metadata_path} must hold a JSON object")
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise BundleError(f"model bundle metadata file {metadata_path} lacks the keys {missing}")
    return data


def _check_onnx_file(path: Path, expected_sha256: str | None, what: str, verify_hash: bool) -> None:
    if not path.is_file():
        raise BundleError(f"{what} file not found: {path}")
    if path.stat().st_size == 0:
        raise BundleError(f"{what} file is empty (corrupt): {path}")
    if verify_hash and expected_sha256 and sha256_file(path) != expected_sha256:
        raise BundleError(
            f"{what} file {path} does not match the SHA-256 recorded in its metadata "
            "(corrupt or replaced after export); re-export the bundle"
        )


def _parse(data: dict[str, Any], metadata_path: Path) -> ModelBundle:
    """Build the dataclass, raising BundleError naming the file and the bad field."""

    def bad(msg: str) -> BundleError:
        return BundleError(f"model bundle metadata file {metadata_path}: {msg}")

    classes = tuple(str(c) for c in data["classes"])
    num_classes = len(classes)
    if num_classes == 0 or len(set(classes)) != num_classes:
        raise bad(f"'classes' must be a non-empty list of unique names, got {list(classes)}")
    order = tuple(data["keypoint_order"])
    if order != tuple(keypoint_names()):
        raise bad(f"keypoint_order {list(order)} differs from this package's {keypoint_names()}")
    try:
        keypoints_3d = np.asarray(data["keypoints_3d"], dtype=np.float64)
        diameters = np.asarray(data["diameters"], dtype=np.float64)
        input_size = tuple(int(v) for v in data["input_size"])
        stride = int(data["stride"])
        mean = tuple(float(v) for v in data["mean"])
        std = tuple(float(v) for v in data["std"])
        offset_scale = float(data.get("offset_scale", DEFAULT_OFFSET_SCALE))
    except (TypeError, ValueError) as exc:
        raise bad(f"malformed numeric field: {exc}") from exc
    vector_field = str(data.get("vector_field", TO_CENTROID))
    if vector_field not in VECTOR_FIELDS:
        raise bad(f"'vector_field' must be one of {list(VECTOR_FIELDS)}, got {vector_field!r}")
    if not (np.isfinite(offset_scale) and offset_scale > 0):
        raise bad(f"'offset_scale' must be > 0, got {offset_scale}")
    try:
        decode = parse_decode_settings(data.get("decode") or {})
    except BundleError as exc:
        raise bad(str(exc)) from None
    if keypoints_3d.shape != (num_classes, NUM_KEYPOINTS, 3):
        raise bad(
            f"'keypoints_3d' must have shape ({num_classes}, {NUM_KEYPOINTS}, 3), got {keypoints_3d.shape}"
        )
    if diameters.shape != (num_classes,) or len(data["object_ids"]) != num_classes:
        raise bad("'diameters' and 'object_ids' need one entry per class")
    if len(data["symmetric"]) != num_classes:
        raise bad("'symmetric' needs one entry per class")
    if len(input_size) != 2 or stride <= 0 or any(v <= 0 or v % stride for v in input_size):
        raise bad(f"'input_size' {list(input_size)} must be two positive multiples of stride {stride}")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise bad(f"'mean' and 'std' need 3 values each with std > 0, got {mean}, {std}")
    directory = metadata_path.parent
    onnx_name = data.get("onnx") or metadata_path.with_suffix(".onnx").name
    fp16_name = data.get("fp16_onnx")
    return ModelBundle(
        onnx_path=directory / onnx_name,
        metadata_path=metadata_path,
        classes=classes,
        object_ids=tuple(int(i) for i in data["object_ids"]),
        input_size=(input_size[0], input_size[1]),
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        stride=stride,
        keypoints_3d=keypoints_3d,
        diameters=diameters,
        symmetric=tuple(bool(s) for s in data["symmetric"]),
        keypoint_order=order,
        vector_field=vector_field,
        offset_scale=offset_scale,
        decode=decode,
        input_name=str(data.get("input_name", "image")),
        output_names=tuple(data.get("output_names", ("belief", "vectors"))),
        dynamic_batch=bool(data.get("dynamic_batch", False)),
        onnx_sha256=data.get("onnx_sha256"),
        fp16_onnx_path=directory / fp16_name if fp16_name else None,
        fp16_onnx_sha256=data.get("fp16_onnx_sha256"),
        model_name=data.get("model_name"),
        training=dict(data.get("training") or {}),
        metrics=dict(data.get("metrics") or {}),
    )


def parse_decode_settings(decode: Any) -> dict[str, Any]:
    """A bundle's ``decode`` settings, checked as ``DecodeParams`` takes them.

    Raises:
        BundleError: not a mapping, an unknown field, or a value ``DecodeParams`` refuses.
    """
    known = [f.name for f in fields(DecodeParams)]
    if not isinstance(decode, dict):
        raise BundleError(f"'decode' must map DecodeParams fields to values, got {decode!r}")
    unknown = sorted(set(decode) - set(known))
    if unknown:
        raise BundleError(f"'decode' names unknown decoder settings {unknown}; known: {known}")
    try:
        DecodeParams(**decode)
    except (DecodeError, TypeError) as exc:
        raise BundleError(f"'decode': {exc}") from None
    return dict(decode)


def load_bundle(path: str | Path, verify_hash: bool = True) -> ModelBundle:
    """Load and validate a model bundle.

    Args:
        path: ``models/NAME``, ``models/NAME.json`` or ``models/NAME.onnx``.
        verify_hash: compare the ONNX files' SHA-256 with the metadata (catches
            truncated or replaced files at start-up rather than as garbage poses).

    Raises:
        BundleError: a file is missing, empty, corrupt or inconsistent; the message
            names the file.
    """
    metadata_path = _resolve_paths(Path(path))
    bundle = _parse(_read_json(metadata_path), metadata_path)
    _check_onnx_file(bundle.onnx_path, bundle.onnx_sha256, "ONNX model", verify_hash)
    if bundle.fp16_onnx_path is not None:
        _check_onnx_file(bundle.fp16_onnx_path, bundle.fp16_onnx_sha256, "FP16 ONNX model", verify_hash)
    _LOG.debug(
        "loaded model bundle %s: classes %s, input %s", metadata_path, bundle.classes, bundle.input_size
    )
    return bundle


def check_against_catalogue(bundle: ModelBundle, catalogue: Any) -> None:
    """Refuse a bundle whose classes differ from the configured object catalogue.

    Class order matters: belief channel ``c*9 + k`` belongs to ``bundle.classes[c]``.
    Ids and 3D keypoints (to 1 mm) must agree too, or PnP would use other cuboids
    than the network was trained on.

    Args:
        bundle: the loaded model bundle.
        catalogue: a ``hrpose_ros.geometry.objects.Catalogue`` (``.names``,
            ``.by_name(name)`` with ``.id`` and ``.keypoints`` (9, 3) metres).

    Raises:
        BundleMismatchError: listing every difference found.
    """
    names = tuple(catalogue.names)
    problems: list[str] = []
    missing_in_catalogue = [c for c in bundle.classes if c not in names]
    missing_in_bundle = [c for c in names if c not in bundle.classes]
    if missing_in_catalogue:
        problems.append(f"classes in the model but not in the catalogue: {missing_in_catalogue}")
    if missing_in_bundle:
        problems.append(f"classes in the catalogue but not in the model: {missing_in_bundle}")
    if not problems and names != bundle.classes:
        problems.append(f"class order differs: model {list(bundle.classes)}, catalogue {list(names)}")
    for index, name in enumerate(bundle.classes):
        if name not in names:
            continue
        spec = catalogue.by_name(name)
        if int(spec.id) != bundle.object_ids[index]:
            problems.append(
                f"'{name}': object id {bundle.object_ids[index]} in the model, {spec.id} in the catalogue"
            )
        offset = np.max(np.abs(np.asarray(spec.keypoints, dtype=np.float64) - bundle.keypoints_3d[index]))
        if not offset <= _KEYPOINT_TOLERANCE_M:
            problems.append(f"'{name}': 3D keypoints differ by up to {offset * 1000:.1f} mm")
    if problems:
        raise BundleMismatchError(
            f"model bundle {bundle.metadata_path} does not match the object catalogue: " + "; ".join(problems)
        )


def select_for_bundle(bundle: ModelBundle, catalogue: Any) -> Any:
    """The catalogue's entries for the bundle's classes, in the bundle's order, checked against it.

    A catalogue (objects.yaml) may describe more objects than one model detects; every
    class of the model must be in it, with the same id and cuboid.

    Raises:
        BundleMismatchError: a model class is missing from the catalogue, or differs.
    """
    missing = [c for c in bundle.classes if c not in tuple(catalogue.names)]
    if missing:
        raise BundleMismatchError(
            f"model bundle {bundle.metadata_path} has classes that the object catalogue lacks: {missing}"
        )
    selected = catalogue.select(list(bundle.classes))
    check_against_catalogue(bundle, selected)
    return selected

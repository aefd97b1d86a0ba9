"""Model bundle: metadata round trip, clear errors for bad files, catalogue check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runtime_fixtures import make_bundle, make_catalogue

from hrpose_ros.geometry.decode import DecodeParams
from hrpose_ros.geometry.keypoints import keypoint_names
from hrpose_ros.geometry.objects import Catalogue, ObjectSpec
from hrpose_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from hrpose_ros.runtime.bundle import (
    BundleError,
    BundleMismatchError,
    check_against_catalogue,
    load_bundle,
    select_for_bundle,
)


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path)


def test_metadata_round_trip_keeps_every_field(bundle):
    loaded = load_bundle(bundle.metadata_path)
    assert loaded.classes == ("box", "can")
    assert loaded.object_ids == (1, 2)
    assert loaded.input_size == (64, 48) and loaded.output_size == (16, 12)
    assert loaded.keypoint_order == tuple(keypoint_names())
    assert loaded.mean == bundle.mean and loaded.std == bundle.std and loaded.stride == 4
    np.testing.assert_array_equal(loaded.keypoints_3d, bundle.keypoints_3d)
    np.testing.assert_allclose(loaded.diameters, bundle.diameters)
    assert loaded.onnx_path == bundle.onnx_path and loaded.onnx_sha256 == bundle.onnx_sha256
    assert loaded.vector_field == "to_centroid" and loaded.offset_scale == 8.0


def test_the_kind_of_vector_field_round_trips_and_older_bundles_hold_the_papers(bundle):
    data = json.loads(bundle.metadata_path.read_text())
    data.update(vector_field="corner_offsets", offset_scale=6.0)
    bundle.metadata_path.write_text(json.dumps(data))
    loaded = load_bundle(bundle.metadata_path)
    assert (loaded.vector_field, loaded.offset_scale) == ("corner_offsets", 6.0)
    assert json.loads(json.dumps(loaded.to_json_dict()))["vector_field"] == "corner_offsets"
    del data["vector_field"], data["offset_scale"]  # written before the fields existed
    bundle.metadata_path.write_text(json.dumps(data))
    assert load_bundle(bundle.metadata_path).vector_field == "to_centroid"


def test_decoder_settings_round_trip_and_older_bundles_take_the_decoders_defaults(bundle):
    data = json.loads(bundle.metadata_path.read_text())
    data["decode"] = {"centroid_threshold": 0.3, "min_keypoints": 6}
    bundle.metadata_path.write_text(json.dumps(data))
    loaded = load_bundle(bundle.metadata_path)
    assert loaded.decode == {"centroid_threshold": 0.3, "min_keypoints": 6}
    assert loaded.decode_params == DecodeParams(centroid_threshold=0.3, min_keypoints=6)
    assert json.loads(json.dumps(loaded.to_json_dict()))["decode"] == loaded.decode
    del data["decode"]  # written before the field existed
    bundle.metadata_path.write_text(json.dumps(data))
    assert load_bundle(bundle.metadata_path).decode_params == DecodeParams()


@pytest.mark.parametrize(
    ("decode", "message"),
    [
        ({"centroid_treshold": 0.3}, r"unknown decoder settings \['centroid_treshold'\]"),
        ({"min_keypoints": 0}, "min_keypoints is out of range"),
        ({"peak_threshold": "high"}, "'decode'"),
        ([0.3], "must map DecodeParams fields"),
    ],
)
def test_bad_decoder_settings_are_refused_naming_them(bundle, decode, message):
    data = json.loads(bundle.metadata_path.read_text())
    data["decode"] = decode
    bundle.metadata_path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle.metadata_path)


@pytest.mark.parametrize("suffix", ["", ".json", ".onnx"])
def test_bundle_loads_from_stem_json_or_onnx_path(bundle, suffix):
    stem = bundle.metadata_path.with_suffix("")
    loaded = load_bundle(stem.with_name(stem.name + suffix))
    assert loaded.metadata_path == bundle.metadata_path


def test_missing_metadata_file_is_named(tmp_path):
    with pytest.raises(BundleError, match=r"not found: .*nothing\.json"):
        load_bundle(tmp_path / "nothing.onnx")


def test_corrupt_metadata_file_is_named(bundle):
    bundle.metadata_path.write_text("{ not json")
    with pytest.raises(BundleError, match=rf"{bundle.metadata_path.name} is not valid JSON"):
        load_bundle(bundle.metadata_path)


def test_missing_onnx_file_is_named(bundle):
    bundle.onnx_path.unlink()
    with pytest.raises(BundleError, match=rf"ONNX model file not found: .*{bundle.onnx_path.name}"):
        load_bundle(bundle.metadata_path)


def test_truncated_onnx_file_fails_its_hash_check(bundle):
    data = bundle.onnx_path.read_bytes()
    bundle.onnx_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=rf"{bundle.onnx_path.name} does not match the SHA-256"):
        load_bundle(bundle.metadata_path)


def test_corrupt_onnx_without_hash_is_refused_by_the_backend_naming_the_file(bundle):
    bundle.onnx_path.write_bytes(b"\x08\x07garbage" * 10)
    loaded = load_bundle(bundle.metadata_path, verify_hash=False)
    with pytest.raises(BundleError, match=rf"cannot load the model file .*{bundle.onnx_path.name}"):
        OnnxRuntimeBackend(loaded, threads=1)


def test_missing_key_is_named(bundle):
    data = json.loads(bundle.metadata_path.read_text())
    del data["stride"]
    bundle.metadata_path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"lacks the keys \['stride'\]"):
        load_bundle(bundle.metadata_path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("keypoint_order", list(reversed(keypoint_names())), "keypoint_order"),
        ("input_size", [66, 48], "multiples of stride"),
        ("keypoints_3d", [[[0.0, 0.0, 0.0]] * 9], "keypoints_3d"),
        ("std", [0.2, 0.0, 0.2], "std > 0"),
        ("classes", ["box", "box"], "unique"),
        ("vector_field", "sideways", "vector_field"),
        ("offset_scale", 0.0, "offset_scale"),
    ],
)
def test_inconsistent_metadata_is_refused(bundle, key, value, message):
    data = json.loads(bundle.metadata_path.read_text())
    data[key] = value
    bundle.metadata_path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle.metadata_path)


def test_matching_catalogue_is_accepted(bundle):
    check_against_catalogue(bundle, make_catalogue())


def test_catalogue_with_other_classes_is_refused_listing_both_sides(bundle):
    with pytest.raises(BundleMismatchError) as info:
        check_against_catalogue(bundle, make_catalogue(("box", "flat")))
    message = str(info.value)
    assert "in the model but not in the catalogue: ['can']" in message
    assert "in the catalogue but not in the model: ['flat']" in message
    assert bundle.metadata_path.name in message


def test_catalogue_in_another_order_is_refused(bundle):
    with pytest.raises(BundleMismatchError, match="class order differs"):
        check_against_catalogue(bundle, make_catalogue(("can", "box")))


def test_catalogue_with_other_cuboid_or_id_is_refused(bundle):
    box, can = make_catalogue()
    bigger = ObjectSpec(
        name="can",
        id=7,
        keypoints=can.keypoints * 1.1,
        diameter=can.diameter,
        symmetric=False,
        color=can.color,
    )
    with pytest.raises(BundleMismatchError) as info:
        check_against_catalogue(bundle, Catalogue([box, bigger]))
    assert "'can': object id 2 in the model, 7 in the catalogue" in str(info.value)
    assert "'can': 3D keypoints differ by up to 9.0 mm" in str(info.value)


def test_select_for_bundle_takes_the_models_classes_from_a_larger_catalogue(tmp_path):
    bundle = make_bundle(tmp_path, make_catalogue(("box", "can")))
    selected = select_for_bundle(bundle, make_catalogue(("box", "can", "flat")))
    assert selected.names == ["box", "can"]


def test_select_for_bundle_refuses_a_model_class_the_catalogue_lacks(tmp_path):
    bundle = make_bundle(tmp_path, make_catalogue(("box", "can")))
    with pytest.raises(BundleMismatchError, match=r"lacks: \['can'\]"):
        select_for_bundle(bundle, make_catalogue(("box", "flat")))

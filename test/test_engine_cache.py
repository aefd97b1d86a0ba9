"""TensorRT engine cache (key, hit, rebuild on mismatch/corruption) and the 10.x/11.x build plan.

Pure Python: no TensorRT or GPU needed. The build function is a counter returning bytes.
"""

from __future__ import annotations

import logging

import pytest
from runtime_fixtures import make_bundle

from hrpose_ros.runtime.bundle import BundleError
from hrpose_ros.runtime.engine_cache import EngineCache, EngineCacheError, engine_key
from hrpose_ros.runtime.trt_builder import TensorRTBuildError, build_plan, onnx_for_plan, tensorrt_major

GPU = "NVIDIA H200"


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "models")


class _Builder:
    """Build function that records how often it ran and returns distinct engines."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return b"engine-%d" % self.calls


def test_key_holds_gpu_tensorrt_version_and_onnx_hash(bundle):
    key = engine_key(bundle.onnx_path, GPU, "10.13.0", "fp16")
    assert (key.gpu_name, key.tensorrt_version, key.precision) == (GPU, "10.13.0", "fp16")
    assert key.onnx_sha256 == bundle.onnx_sha256


def test_second_load_is_a_cache_hit_without_rebuilding(bundle, tmp_path):
    cache, build = EngineCache(tmp_path / "cache"), _Builder()
    key = engine_key(bundle.onnx_path, GPU, "10.13.0", "fp16")
    first = cache.load_or_build("net", key, build)
    second = cache.load_or_build("net", key, build)
    assert first == second == b"engine-1" and build.calls == 1
    assert cache.engine_path("net", "fp16").is_file()


@pytest.mark.parametrize(
    ("changed", "field"),
    [({"gpu_name": "NVIDIA H100"}, "gpu_name"), ({"tensorrt_version": "11.0.0"}, "tensorrt_version")],
)
def test_other_gpu_or_tensorrt_version_rebuilds_with_a_log_line(bundle, tmp_path, caplog, changed, field):
    cache, build = EngineCache(tmp_path / "cache"), _Builder()
    key = engine_key(bundle.onnx_path, GPU, "10.13.0", "fp16")
    cache.load_or_build("net", key, build)
    other = engine_key(
        bundle.onnx_path, changed.get("gpu_name", GPU), changed.get("tensorrt_version", "10.13.0"), "fp16"
    )
    with caplog.at_level(logging.WARNING):
        assert cache.load_or_build("net", other, build) == b"engine-2"
    assert build.calls == 2
    assert "built for another configuration" in caplog.text and field in caplog.text


def test_changed_onnx_file_rebuilds(bundle, tmp_path, caplog):
    cache, build = EngineCache(tmp_path / "cache"), _Builder()
    cache.load_or_build("net", engine_key(bundle.onnx_path, GPU, "10.13.0", "fp16"), build)
    bundle.onnx_path.write_bytes(bundle.onnx_path.read_bytes() + b"\x00")
    with caplog.at_level(logging.WARNING):
        cache.load_or_build("net", engine_key(bundle.onnx_path, GPU, "10.13.0", "fp16"), build)
    assert build.calls == 2 and "onnx_sha256" in caplog.text


def test_corrupt_engine_file_rebuilds_with_a_log_line(bundle, tmp_path, caplog):
    cache, build = EngineCache(tmp_path / "cache"), _Builder()
    key = engine_key(bundle.onnx_path, GPU, "10.13.0", "fp16")
    cache.load_or_build("net", key, build)
    cache.engine_path("net", "fp16").write_bytes(b"engine-1 but truncated")
    with caplog.at_level(logging.WARNING):
        assert cache.load_or_build("net", key, build) == b"engine-2"
    assert "is corrupt" in caplog.text and "net.fp16.engine" in caplog.text


def test_unreadable_sidecar_rebuilds_with_a_log_line(bundle, tmp_path, caplog):
    cache, build = EngineCache(tmp_path / "cache"), _Builder()
    key = engine_key(bundle.onnx_path, GPU, "10.13.0", "fp16")
    path = cache.store("net", key, b"engine-0")
    path.with_name(path.name + ".json").write_text("{")
    with caplog.at_level(logging.WARNING):
        cache.load_or_build("net", key, build)
    assert build.calls == 1 and "unreadable" in caplog.text


def test_missing_engine_logs_a_miss(bundle, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        assert EngineCache(tmp_path).load("net", engine_key(bundle.onnx_path, GPU, "10.0", "fp32")) is None
    assert "does not exist" in caplog.text


def test_empty_build_result_is_an_error(bundle, tmp_path):
    key = engine_key(bundle.onnx_path, GPU, "10.13.0", "fp16")
    with pytest.raises(EngineCacheError, match="no engine"):
        EngineCache(tmp_path).load_or_build("net", key, lambda: b"")


def test_precisions_have_separate_engines_and_timing_cache_is_per_gpu_and_version(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.engine_path("net", "fp16") != cache.engine_path("net", "fp32")
    assert cache.timing_cache_path(GPU, "10.13.0") != cache.timing_cache_path("NVIDIA H100", "10.13.0")
    assert cache.timing_cache_path(GPU, "10.13.0") != cache.timing_cache_path(GPU, "11.0.0")


def test_tensorrt_10_fp16_uses_the_builder_flag_on_the_fp32_onnx():
    plan = build_plan("10.13.3.9", "fp16")
    assert (plan.major, plan.onnx_variant, plan.builder_flags, plan.network_flags) == (
        10,
        "fp32",
        ("FP16",),
        (),
    )
    assert not plan.strongly_typed


def test_tensorrt_10_fp32_sets_no_precision_flag():
    assert build_plan("10.0.1", "fp32").builder_flags == ()


def test_tensorrt_11_fp16_is_strongly_typed_on_the_fp16_onnx_without_builder_flags():
    plan = build_plan("11.0.0.1", "fp16")
    assert plan.strongly_typed and plan.onnx_variant == "fp16" and plan.builder_flags == ()


def test_tensorrt_11_fp32_is_strongly_typed_on_the_fp32_onnx():
    plan = build_plan("11.2", "fp32")
    assert plan.strongly_typed and plan.onnx_variant == "fp32"


def test_newer_major_follows_the_11_rules_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert build_plan("12.1.0", "fp16").strongly_typed
    assert "newer than the tested majors" in caplog.text


@pytest.mark.parametrize(
    ("version", "precision", "match"),
    [("8.6.1", "fp16", "too old"), ("nightly", "fp16", "cannot parse"), ("10.1", "int8", "precision")],
)
def test_unsupported_versions_and_precisions_are_refused(version, precision, match):
    with pytest.raises(TensorRTBuildError, match=match):
        build_plan(version, precision)


def test_major_version_parsing():
    assert tensorrt_major("10.13.0.35") == 10 and tensorrt_major(" 11.0 ") == 11


def test_fp16_plan_needs_the_bundles_fp16_onnx(bundle):
    assert onnx_for_plan(bundle, build_plan("10.5", "fp16")) == bundle.onnx_path
    with pytest.raises(BundleError, match=rf"{bundle.metadata_path.name} has no FP16 ONNX file"):
        onnx_for_plan(bundle, build_plan("11.0", "fp16"))

"""TensorRT backend and its cuda-python buffers.

The engine tests need TensorRT and an NVIDIA GPU and skip with the reason otherwise;
error paths and cuda-python result handling are tested everywhere.
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
from runtime_fixtures import make_bundle

from hrpose_ros.runtime import cuda_buffers as cb
from hrpose_ros.runtime.backends import BackendError, create_backend, resolve_backend_name
from hrpose_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from hrpose_ros.runtime.build_engine import main as build_engine_main

cudart = pytest.importorskip("cuda.bindings.runtime", reason="cuda-python (cuda-bindings) is not installed")

HAS_GPU = cb.cuda_device_count() > 0
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no CUDA device visible (no GPU or no driver)")
needs_tensorrt = pytest.mark.skipif(not (HAS_GPU and HAS_TENSORRT), reason="needs TensorRT and an NVIDIA GPU")


def test_check_cuda_unpacks_success_results():
    ok = cudart.cudaError_t.cudaSuccess
    assert cb.check_cuda((ok,)) is None
    assert cb.check_cuda((ok, 5)) == 5
    assert cb.check_cuda((ok, 1, 2)) == (1, 2)


def test_check_cuda_raises_naming_the_call_and_the_error():
    err = cudart.cudaError_t.cudaErrorMemoryAllocation
    with pytest.raises(cb.CudaError, match=r"cudaMalloc\(64\) failed with cudaErrorMemoryAllocation"):
        cb.check_cuda((err, None), "cudaMalloc(64)")


@pytest.mark.skipif(HAS_GPU, reason="tests the no-GPU error path")
def test_device_buffer_without_a_gpu_raises_a_clear_cuda_error():
    assert cb.cuda_device_count() == 0
    with pytest.raises(cb.CudaError, match=r"cudaMalloc\(1024\) failed with cudaError"):
        cb.DeviceBuffer(1024)


@pytest.mark.skipif(HAS_TENSORRT and HAS_GPU, reason="tests the error path without TensorRT")
def test_tensorrt_backend_without_tensorrt_or_gpu_is_a_clear_backend_error(tmp_path):
    with pytest.raises(BackendError, match=r"TensorRT is not installed|CUDA device 0 not found"):
        create_backend("tensorrt", make_bundle(tmp_path), cache_dir=tmp_path / "cache")


@pytest.mark.skipif(HAS_TENSORRT and HAS_GPU, reason="tests the fallback without TensorRT")
def test_auto_falls_back_to_onnxruntime_without_tensorrt():
    assert resolve_backend_name("auto") == "onnxruntime"


@pytest.mark.skipif(HAS_TENSORRT, reason="tests the CLI error path without TensorRT")
def test_build_engine_cli_fails_with_a_reason_without_tensorrt(tmp_path, caplog):
    bundle = make_bundle(tmp_path)
    with caplog.at_level(logging.ERROR):
        assert build_engine_main([str(bundle.metadata_path), "--cache-dir", str(tmp_path / "c")]) == 1
    assert "TensorRT is not installed" in caplog.text


def test_build_engine_cli_names_a_missing_bundle(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert build_engine_main([str(tmp_path / "absent")]) == 1
    assert "absent.json" in caplog.text


@pytest.mark.gpu
@needs_gpu
def test_pinned_and_device_buffers_round_trip_through_a_stream():
    host_in = cb.PinnedHostArray((3, 5), np.float32)
    host_out = cb.PinnedHostArray((3, 5), np.float32)
    device = cb.DeviceBuffer(host_in.nbytes)
    stream = cb.CudaStream()
    host_in.array[...] = np.arange(15, dtype=np.float32).reshape(3, 5)
    cb.copy_host_to_device_async(device, host_in, stream)
    cb.copy_device_to_host_async(host_out, device, stream)
    stream.synchronize()
    np.testing.assert_array_equal(host_out.array, host_in.array)
    assert cb.cuda_device_name(0)
    for item in (device, host_in, host_out):
        item.free()
    stream.destroy()


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_tensorrt
def test_tensorrt_engine_matches_onnxruntime_and_is_cached(tmp_path, caplog):
    bundle = make_bundle(tmp_path / "models")
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 64)).astype(np.float32)
    expected = OnnxRuntimeBackend(bundle, threads=1).infer(x)
    backend = create_backend("tensorrt", bundle, cache_dir=tmp_path / "cache", precision="fp32")
    for got, ref in zip(backend.infer(x), expected, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)
    backend.close()
    with caplog.at_level(logging.INFO):
        create_backend("tensorrt", bundle, cache_dir=tmp_path / "cache", precision="fp32").close()
    assert "cache hit" in caplog.text

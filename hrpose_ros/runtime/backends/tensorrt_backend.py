"""TensorRT backend: cached engine, ``execute_async_v3`` on a CUDA stream, no torch.

Device buffers, pinned host buffers and the stream come from ``cuda_buffers``
(cuda-python). Inputs are copied into a pinned buffer, sent with an asynchronous copy,
the engine runs, outputs come back asynchronously and the stream is synchronised once.
Written against the TensorRT 10/11 Python API; unverified on hardware (see README).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hrpose_ros.runtime import cuda_buffers as cb
from hrpose_ros.runtime.backends.base import Backend, BackendError
from hrpose_ros.runtime.bundle import ModelBundle
from hrpose_ros.runtime.engine_cache import EngineCache, engine_key
from hrpose_ros.runtime.trt_builder import (
    TensorRTBuildError,
    build_plan,
    build_serialized_engine,
    import_tensorrt,
    onnx_for_plan,
)

__all__ = ["DEFAULT_CACHE_DIR", "TensorRTBackend", "load_or_build_engine"]

_LOG = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "hrpose_ros" / "engines"
"""Where engines are cached unless ``cache_dir`` is given."""


def load_or_build_engine(
    bundle: ModelBundle,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    *,
    precision: str = "fp16",
    device: int = 0,
    workspace_bytes: int = 1 << 30,
    force_rebuild: bool = False,
) -> tuple[bytes, Path]:
    """Serialised engine for ``bundle`` on this GPU and TensorRT; built and cached on a miss.

    Returns the engine bytes and the cache file path.
    """
    trt = import_tensorrt()
    plan = build_plan(trt.__version__, precision)
    onnx_path = onnx_for_plan(bundle, plan)
    cache = EngineCache(cache_dir)
    gpu_name = cb.cuda_device_name(device)
    key = engine_key(onnx_path, gpu_name, trt.__version__, precision)
    if force_rebuild:
        _LOG.info("TensorRT engine rebuild forced for %s", bundle.name)
        cache.invalidate(bundle.name, precision)
    timing = cache.timing_cache_path(gpu_name, trt.__version__)
    blob = cache.load_or_build(
        bundle.name, key, lambda: build_serialized_engine(bundle, plan, timing, workspace_bytes)
    )
    return blob, cache.engine_path(bundle.name, precision)


class _Binding:
    """One I/O tensor: name, shape, dtype and its device + pinned host buffers."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype
        self.host = cb.PinnedHostArray(shape, dtype)
        self.device = cb.DeviceBuffer(self.host.nbytes)

    def free(self) -> None:
        self.device.free()
        self.host.free()


class TensorRTBackend(Backend):
    """Runs the bundle through a TensorRT engine from the cache (built on a miss).

    Args:
        bundle: the model bundle.
        cache_dir: engine cache directory.
        precision: ``"fp16"`` (default) or ``"fp32"``.
        device: CUDA device index.
        force_rebuild: ignore a cached engine.
    """

    name = "tensorrt"

    def __init__(
        self,
        bundle: ModelBundle,
        cache_dir: str | Path = DEFAULT_CACHE_DIR,
        *,
        precision: str = "fp16",
        device: int = 0,
        force_rebuild: bool = False,
    ) -> None:
        super().__init__(bundle)
        try:
            trt = import_tensorrt()
        except TensorRTBuildError as exc:
            raise BackendError(str(exc)) from exc
        if cb.cuda_device_count() <= device:
            raise BackendError(f"tensorrt backend: CUDA device {device} not found")
        cb.set_device(device)
        blob, path = load_or_build_engine(
            bundle, cache_dir, precision=precision, device=device, force_rebuild=force_rebuild
        )
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            EngineCache(cache_dir).invalidate(bundle.name, precision)
            _LOG.warning("TensorRT could not deserialise %s; rebuilding", path)
            blob, path = load_or_build_engine(
                bundle, cache_dir, precision=precision, device=device, force_rebuild=True
            )
            self.engine = self._runtime.deserialize_cuda_engine(blob)
            if self.engine is None:
                raise BackendError(f"TensorRT cannot deserialise the freshly built engine {path}")
        self.context = self.engine.create_execution_context()
        self.stream = cb.CudaStream()
        self._bindings = self._allocate(trt)
        _LOG.info("tensorrt backend: engine %s on %s", path, cb.cuda_device_name(device))

    def _allocate(self, trt: Any) -> dict[str, _Binding]:
        """Buffers for every I/O tensor at batch 1; addresses bound to the context once."""
        bindings: dict[str, _Binding] = {}
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            if is_input and -1 in tuple(self.engine.get_tensor_shape(name)):
                self.context.set_input_shape(name, self.input_shape)
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            bindings[name] = _Binding(name, shape, dtype)
            if not self.context.set_tensor_address(name, bindings[name].device.ptr):
                raise BackendError(f"tensorrt backend: cannot bind tensor {name!r}")
        expected = {self.bundle.input_name, *self.bundle.output_names}
        if set(bindings) != expected:
            raise BackendError(
                f"engine tensors {sorted(bindings)} differ from the bundle's {sorted(expected)}"
            )
        return bindings

    def infer(self, image_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """H2D copy, ``execute_async_v3``, D2H copies, one stream synchronisation."""
        x = self.check_input(image_nchw)
        if x.shape[0] != 1:
            raise BackendError("tensorrt backend runs batch 1")
        inp = self._bindings[self.bundle.input_name]
        np.copyto(inp.host.array, x, casting="same_kind" if inp.dtype == np.float32 else "unsafe")
        cb.copy_host_to_device_async(inp.device, inp.host, self.stream)
        if not self.context.execute_async_v3(self.stream.handle):
            raise BackendError("tensorrt backend: execute_async_v3 failed")
        outputs = [self._bindings[name] for name in self.bundle.output_names]
        for out in outputs:
            cb.copy_device_to_host_async(out.host, out.device, self.stream)
        self.stream.synchronize()
        belief, vectors = (
            o.host.array if o.dtype == np.float32 else o.host.array.astype(np.float32) for o in outputs
        )
        return belief, vectors

    def close(self) -> None:
        """Free buffers, the stream and the engine."""
        for binding in getattr(self, "_bindings", {}).values():
            binding.free()
        self._bindings = {}
        if hasattr(self, "stream"):
            self.stream.destroy()
        self.context = None
        self.engine = None

"""Device memory, pinned host buffers and streams through cuda-python (no torch, no pycuda).

The TensorRT backend uses these, as NVIDIA's own samples do since 2023
(``from cuda.bindings import runtime as cudart``). Every cudart call returns
``(error, *values)``; ``check_cuda`` turns a non-success code into ``CudaError``
naming the call and the error.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from typing import Any

import numpy as np

__all__ = [
    "CudaError",
    "CudaStream",
    "DeviceBuffer",
    "PinnedHostArray",
    "check_cuda",
    "copy_device_to_host_async",
    "copy_host_to_device_async",
    "cuda_device_count",
    "cuda_device_name",
    "set_device",
]

_LOG = logging.getLogger(__name__)


class CudaError(RuntimeError):
    """A CUDA runtime call failed, or cuda-python is not installed."""


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # noqa: PLC0415 (lazy: optional dependency)
    except ImportError as exc:
        raise CudaError(f"cuda-python (cuda-bindings) is not installed: {exc}") from exc
    return cudart


def check_cuda(result: Any, call: str = "CUDA call") -> Any:
    """Unpack a cuda-python result tuple ``(err, *values)``; raise ``CudaError`` on failure.

    Returns None, the single value, or a tuple of values.
    """
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        detail = ""
        try:
            cudart = _cudart()
            message = cudart.cudaGetErrorString(err)[1]
            detail = f": {message.decode() if isinstance(message, bytes) else message}"
        except (CudaError, TypeError, ValueError, IndexError):
            pass
        raise CudaError(f"{call} failed with {name} ({int(err)}){detail}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def cuda_device_count() -> int:
    """Visible CUDA devices; 0 when cuda-python, the driver or a GPU is missing."""
    try:
        return int(check_cuda(_cudart().cudaGetDeviceCount(), "cudaGetDeviceCount"))
    except CudaError as exc:
        _LOG.debug("no CUDA device: %s", exc)
        return 0


def set_device(device: int = 0) -> None:
    """Make ``device`` current for this thread (``cudaSetDevice``)."""
    check_cuda(_cudart().cudaSetDevice(device), f"cudaSetDevice({device})")


def cuda_device_name(device: int = 0) -> str:
    """Marketing name of a CUDA device (part of the TensorRT engine cache key)."""
    cudart = _cudart()
    props = check_cuda(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name
    return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()


class DeviceBuffer:
    """``nbytes`` of device memory from ``cudaMalloc``; ``ptr`` is the device address."""

    def __init__(self, nbytes: int) -> None:
        if nbytes <= 0:
            raise ValueError(f"DeviceBuffer needs nbytes > 0, got {nbytes}")
        self._cudart = _cudart()
        self.nbytes = int(nbytes)
        self.ptr = int(check_cuda(self._cudart.cudaMalloc(self.nbytes), f"cudaMalloc({self.nbytes})"))

    def free(self) -> None:
        """Release the memory (idempotent)."""
        if self.ptr:
            check_cuda(self._cudart.cudaFree(self.ptr), "cudaFree")
            self.ptr = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.free()


class PinnedHostArray:
    """A numpy array over page-locked host memory (``cudaMallocHost``) for async copies."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> None:
        self._cudart = _cudart()
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        if self.nbytes <= 0:
            raise ValueError(f"PinnedHostArray needs a non-empty shape, got {shape}")
        self.ptr = int(check_cuda(self._cudart.cudaMallocHost(self.nbytes), f"cudaMallocHost({self.nbytes})"))
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape)

    def free(self) -> None:
        """Release the pinned memory (idempotent); ``array`` must not be used afterwards."""
        if self.ptr:
            self.array = np.empty(0, dtype=self.dtype)
            check_cuda(self._cudart.cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.free()


class CudaStream:
    """A CUDA stream (``cudaStreamCreate``); ``handle`` is what ``execute_async_v3`` takes."""

    def __init__(self) -> None:
        self._cudart = _cudart()
        self.raw = check_cuda(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.handle = int(self.raw)

    def synchronize(self) -> None:
        """Block until all work queued on the stream is done."""
        check_cuda(self._cudart.cudaStreamSynchronize(self.raw), "cudaStreamSynchronize")

    def destroy(self) -> None:
        """Destroy the stream (idempotent)."""
        if self.handle:
            check_cuda(self._cudart.cudaStreamDestroy(self.raw), "cudaStreamDestroy")
            self.handle = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.destroy()


def copy_host_to_device_async(dst: DeviceBuffer, src: PinnedHostArray, stream: CudaStream) -> None:
    """Queue a pinned-host -> device copy of ``src.nbytes`` on ``stream``."""
    if src.nbytes > dst.nbytes:
        raise ValueError(f"host buffer ({src.nbytes} B) is larger than the device buffer ({dst.nbytes} B)")
    cudart = _cudart()
    kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
    check_cuda(cudart.cudaMemcpyAsync(dst.ptr, src.ptr, src.nbytes, kind, stream.raw), "cudaMemcpyAsync(H2D)")


def copy_device_to_host_async(dst: PinnedHostArray, src: DeviceBuffer, stream: CudaStream) -> None:
    """Queue a device -> pinned-host copy of ``dst.nbytes`` on ``stream``."""
    if dst.nbytes > src.nbytes:
        raise ValueError(f"host buffer ({dst.nbytes} B) is larger than the device buffer ({src.nbytes} B)")
    cudart = _cudart()
    kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
    check_cuda(cudart.cudaMemcpyAsync(dst.ptr, src.ptr, dst.nbytes, kind, stream.raw), "cudaMemcpyAsync(D2H)")

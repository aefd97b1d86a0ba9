"""Backend registry: pick an inference backend by name, import its library lazily.

Names: ``onnxruntime`` (CPU default; CUDA/TensorRT execution providers when the
installed onnxruntime has them), ``tensorrt`` (NVIDIA GPU, engine cache), ``torch``
(checkpoints, GPU FP16 + CUDA graphs) and ``auto`` (TensorRT if importable and a GPU
is present, else ONNX Runtime, which uses its CUDA provider when available).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

from hrpose_ros.runtime.backends.base import Backend, BackendError
from hrpose_ros.runtime.bundle import ModelBundle

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendError",
    "create_backend",
    "resolve_backend_name",
    "tensorrt_usable",
]

_LOG = logging.getLogger(__name__)

_REGISTRY: dict[str, str] = {
    "onnxruntime": "hrpose_ros.runtime.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "tensorrt": "hrpose_ros.runtime.backends.tensorrt_backend:TensorRTBackend",
    "torch": "hrpose_ros.runtime.backends.torch_backend:TorchBackend",
}

BACKEND_NAMES = (*_REGISTRY, "auto")
"""Names accepted by ``create_backend``."""


def tensorrt_usable() -> bool:
    """True when the tensorrt module is importable and a CUDA device is visible."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    from hrpose_ros.runtime.cuda_buffers import cuda_device_count  # noqa: PLC0415 (lazy: cuda-python)

    return cuda_device_count() > 0


def resolve_backend_name(name: str) -> str:
    """Map ``auto`` to a concrete backend name; validate the others."""
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; choose one of {list(BACKEND_NAMES)}")
    if name != "auto":
        return name
    return "tensorrt" if tensorrt_usable() else "onnxruntime"


def create_backend(name: str, bundle: ModelBundle, **options: Any) -> Backend:
    """Create the backend ``name`` for ``bundle``; ``options`` go to its constructor.

    Raises:
        BackendError: unknown name, or the backend's library/device is missing.
    """
    resolved = resolve_backend_name(name)
    module_name, class_name = _REGISTRY[resolved].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"backend {resolved!r} is not available: {exc}") from exc
    if resolved != name:
        _LOG.info("backend 'auto' resolved to %r", resolved)
    return getattr(module, class_name)(bundle, **options)

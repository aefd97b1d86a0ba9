"""ONNX Runtime backend: the CPU default, CUDA/TensorRT execution providers when present.

Outputs are bound to preallocated numpy buffers with IO binding, so a steady-state
``infer`` allocates nothing on the Python side.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hrpose_ros.runtime.backends.base import Backend, BackendError
from hrpose_ros.runtime.bundle import BundleError, ModelBundle

__all__ = ["GRAPH_OPTIMIZATION_LEVELS", "OnnxRuntimeBackend", "select_providers"]

_LOG = logging.getLogger(__name__)

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
"""Accepted ``graph_optimization`` values (ONNX Runtime's ORT_DISABLE_ALL ... ORT_ENABLE_ALL)."""

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def select_providers(available: list[str], device: str = "auto") -> list[str]:
    """Execution providers to request, best first.

    Args:
        available: ``onnxruntime.get_available_providers()``.
        device: ``"auto"`` (GPU providers when present, then CPU), ``"cpu"`` or ``"cuda"``.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise BackendError(f"onnxruntime: device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    gpu = [p for p in _GPU_PROVIDERS if p in available]
    if device == "cuda" and not gpu:
        raise BackendError(f"onnxruntime: device 'cuda' requested but this build only has {available}")
    chosen = [] if device == "cpu" else gpu
    return [*chosen, "CPUExecutionProvider"]


def _session_options(ort: Any, threads: int | None, graph_optimization: str, spin: bool) -> Any:
    if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
        raise BackendError(
            f"onnxruntime: graph_optimization must be one of {GRAPH_OPTIMIZATION_LEVELS}, "
            f"got {graph_optimization!r}"
        )
    level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[graph_optimization]
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    if threads is not None:
        if threads < 1:
            raise BackendError(f"onnxruntime: threads must be >= 1, got {threads}")
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spin:  # idle worker threads sleep instead of busy-waiting (CPU shared with other nodes)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxRuntimeBackend(Backend):
    """Runs the bundle's ONNX file (or ``onnx_path``) with ONNX Runtime.

    Args:
        bundle: the model bundle.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see ``select_providers``).
        graph_optimization: one of ``GRAPH_OPTIMIZATION_LEVELS``.
        onnx_path: run another ONNX file with the same I/O (e.g. an INT8-quantised copy).
        providers: explicit provider list, overriding ``device``.
        spin: let idle intra-op threads busy-wait (ONNX Runtime's default; lowest
            latency on a dedicated CPU). False frees the cores between frames.
    """

    name = "onnxruntime"

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        threads: int | None = None,
        device: str = "auto",
        graph_optimization: str = "all",
        onnx_path: str | Path | None = None,
        providers: list[str] | None = None,
        spin: bool = True,
    ) -> None:
        super().__init__(bundle)
        try:
            import onnxruntime as ort  # noqa: PLC0415 (lazy: optional dependency)
        except ImportError as exc:
            raise BackendError(f"onnxruntime backend needs the onnxruntime package: {exc}") from exc
        self.onnx_path = Path(onnx_path) if onnx_path is not None else bundle.onnx_path
        if not self.onnx_path.is_file():
            raise BundleError(f"ONNX model file not found: {self.onnx_path}")
        options = _session_options(ort, threads, graph_optimization, spin)
        chosen = providers or select_providers(ort.get_available_providers(), device)
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"ONNX Runtime cannot load the model file {self.onnx_path}: {exc}") from exc
        self.providers = self.session.get_providers()
        self._check_io()
        self._binding = self.session.io_binding()
        self._outputs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        _LOG.info("onnxruntime backend: %s with %s", self.onnx_path.name, self.providers)

    def _check_io(self) -> None:
        """The ONNX file must have the bundle's named input and the two named outputs."""
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [self.bundle.input_name] or sorted(outputs) != sorted(self.bundle.output_names):
            raise BundleError(
                f"ONNX model file {self.onnx_path} has inputs {inputs} and outputs {outputs}; "
                f"expected [{self.bundle.input_name!r}] and {list(self.bundle.output_names)}"
            )

    def _output_buffers(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Preallocated output arrays for a batch size, bound once."""
        if batch not in self._outputs:
            belief = np.empty((batch, *self.belief_shape[1:]), dtype=np.float32)
            vectors = np.empty((batch, *self.vectors_shape[1:]), dtype=np.float32)
            self._outputs[batch] = (belief, vectors)
        return self._outputs[batch]

    def infer(self, image_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the session; returns views of this backend's output buffers."""
        x = self.check_input(image_nchw)
        belief, vectors = self._output_buffers(x.shape[0])
        binding = self._binding
        binding.bind_input(self.bundle.input_name, "cpu", 0, np.float32, x.shape, x.ctypes.data)
        names = self.bundle.output_names
        binding.bind_output(names[0], "cpu", 0, np.float32, belief.shape, belief.ctypes.data)
        binding.bind_output(names[1], "cpu", 0, np.float32, vectors.shape, vectors.ctypes.data)
        self.session.run_with_iobinding(binding)
        return belief, vectors

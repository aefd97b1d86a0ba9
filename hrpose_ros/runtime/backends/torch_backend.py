"""PyTorch backend: runs a training checkpoint directly (no ONNX), FP16 + CUDA graphs on GPU.

Optional: only this module imports torch (and the network definition of
``hrpose_ros.network``, never the training package), lazily, so the deployment runtime
works without a training stack. On CPU it runs FP32 eager; on a CUDA device it runs FP16
weights, captures the forward pass in a CUDA graph and copies results into pinned host
buffers.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np

from hrpose_ros.runtime.backends.base import Backend, BackendError
from hrpose_ros.runtime.bundle import BundleError, ModelBundle

__all__ = ["TorchBackend", "load_checkpoint_model"]

_LOG = logging.getLogger(__name__)


def load_checkpoint_model(path: str | Path, num_classes: int | None = None) -> Any:
    """Rebuild the network of a training checkpoint (CPU, eval mode) via ``network.checkpoint``.

    Args:
        path: a checkpoint written by ``hrpose_ros.training.checkpoint.save_checkpoint``.
        num_classes: when given, the checkpoint must have been trained for this many classes.

    Raises:
        BundleError: missing/unreadable file, or a class count that does not match.
    """
    from hrpose_ros.network.checkpoint import CheckpointError, model_from_checkpoint  # noqa: PLC0415 (lazy: torch)

    try:
        model, info = model_from_checkpoint(path)
    except (CheckpointError, RuntimeError, KeyError) as exc:
        raise BundleError(f"cannot load the checkpoint file {path}: {exc}") from exc
    if num_classes is not None and info.get("num_classes") != num_classes:
        raise BundleError(
            f"checkpoint file {path} was trained for {info.get('num_classes')} classes, "
            f"the bundle has {num_classes}"
        )
    return model


class TorchBackend(Backend):
    """Runs a torch model (given, or loaded from ``checkpoint``).

    Args:
        bundle: the model bundle (classes, input size); its ``training.checkpoint`` and
            ``model_name`` are used when neither ``model`` nor ``checkpoint`` is given.
        model: an ``nn.Module`` whose forward returns a dict with ``belief``/``vectors``.
        checkpoint: a training checkpoint file.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        fp16: half precision (default: on CUDA only).
        cuda_graphs: capture the forward in a CUDA graph (default: on CUDA only).
        threads: torch CPU threads (None: leave torch's setting).
    """

    name = "torch"

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        model: Any = None,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        fp16: bool | None = None,
        cuda_graphs: bool | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(bundle)
        try:
            import torch  # noqa: PLC0415 (lazy: optional dependency)
        except ImportError as exc:
            raise BackendError(f"torch backend needs PyTorch: {exc}") from exc
        self._torch = torch
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.device = torch.device(
            "cuda"
            if device == "auto" and torch.cuda.is_available()
            else ("cpu" if device == "auto" else device)
        )
        on_gpu = self.device.type == "cuda"
        if on_gpu and not torch.cuda.is_available():
            raise BackendError(f"torch backend: device {device!r} requested but CUDA is not available")
        self.fp16 = on_gpu if fp16 is None else bool(fp16)
        self.cuda_graphs = on_gpu if cuda_graphs is None else bool(cuda_graphs)
        if self.cuda_graphs and not on_gpu:
            raise BackendError("torch backend: CUDA graphs need a CUDA device")
        if model is None:
            model = self._load(checkpoint)
        elif self.fp16:
            model = copy.deepcopy(model)  # do not turn the caller's model into half precision
        self.model = model.eval().to(self.device, dtype=torch.float16 if self.fp16 else torch.float32)
        self._graph: Any = None
        self._static_in: Any = None
        self._static_out: tuple[Any, Any] | None = None
        self._host_out: tuple[Any, Any] | None = None
        _LOG.info("torch backend on %s (fp16=%s, cuda_graphs=%s)", self.device, self.fp16, self.cuda_graphs)

    def _load(self, checkpoint: str | Path | None) -> Any:
        path = checkpoint or self.bundle.training.get("checkpoint")
        if not path:
            raise BackendError("torch backend needs a model or a checkpoint (the bundle records none)")
        path = Path(path)
        if not path.is_absolute() and not path.exists():
            path = self.bundle.metadata_path.parent / path
        return load_checkpoint_model(path, self.bundle.num_classes)

    def _forward(self, x: Any) -> tuple[Any, Any]:
        out = self.model(x)
        return out["belief"].float(), out["vectors"].float()

    def _capture(self) -> None:
        """Warm up on a side stream, capture one forward pass, allocate pinned outputs."""
        torch = self._torch
        dtype = torch.float16 if self.fp16 else torch.float32
        self._static_in = torch.zeros(self.input_shape, device=self.device, dtype=dtype)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):
                self._forward(self._static_in)
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph), torch.inference_mode():
            self._static_out = self._forward(self._static_in)
        self._host_out = tuple(
            torch.empty(o.shape, dtype=torch.float32, pin_memory=True) for o in self._static_out
        )

    def _infer_graph(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._graph is None:
            self._capture()
        torch = self._torch
        self._static_in.copy_(torch.from_numpy(x), non_blocking=False)
        self._graph.replay()
        assert self._static_out is not None and self._host_out is not None
        for host, dev in zip(self._host_out, self._static_out, strict=True):
            host.copy_(dev, non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return self._host_out[0].numpy(), self._host_out[1].numpy()

    def infer(self, image_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the model; CUDA-graph path for batch 1 on GPU, eager otherwise."""
        x = self.check_input(image_nchw)
        torch = self._torch
        if self.cuda_graphs and x.shape[0] == 1:
            return self._infer_graph(x)
        dtype = torch.float16 if self.fp16 else torch.float32
        with torch.inference_mode():
            belief, vectors = self._forward(torch.from_numpy(x).to(self.device, dtype=dtype))
        return belief.cpu().numpy(), vectors.cpu().numpy()

"""The one interface every inference backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS, VECTOR_CHANNELS_PER_CLASS
from hrpose_ros.runtime.bundle import ModelBundle

__all__ = ["Backend", "BackendError"]


class BackendError(RuntimeError):
    """A backend cannot be created or cannot run (missing library, device, bad options)."""


class Backend(ABC):
    """Runs the network: normalised N×3×H×W float32 in, ``belief`` and ``vectors`` out.

    ``infer`` returns (belief (N, C·9, H/4, W/4), vectors (N, C·16, H/4, W/4)) float32
    numpy arrays. They may be views of buffers the backend reuses: they stay valid
    until the next ``infer`` call (copy them to keep them longer).
    """

    name: str = "backend"

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        width, height = bundle.input_size
        self.input_shape = (1, 3, height, width)
        out_w, out_h = bundle.output_size
        self.belief_shape = (1, bundle.num_classes * NUM_KEYPOINTS, out_h, out_w)
        self.vectors_shape = (1, bundle.num_classes * VECTOR_CHANNELS_PER_CLASS, out_h, out_w)

    def check_input(self, image_nchw: np.ndarray) -> np.ndarray:
        """Validate shape/dtype; returns a C-contiguous float32 array (no copy when already so)."""
        if not isinstance(image_nchw, np.ndarray) or image_nchw.ndim != 4:
            raise BackendError(
                f"{self.name}: input must be a 4-D N×3×H×W array, got {getattr(image_nchw, 'shape', None)}"
            )
        batch_ok = image_nchw.shape[0] == 1 or (self.bundle.dynamic_batch and image_nchw.shape[0] >= 1)
        if not batch_ok or image_nchw.shape[1:] != self.input_shape[1:]:
            raise BackendError(
                f"{self.name}: input shape {image_nchw.shape} does not match the model's "
                f"(N, 3, {self.input_shape[2]}, {self.input_shape[3]})"
                + ("" if self.bundle.dynamic_batch else " with N = 1 (fixed batch)")
            )
        return np.ascontiguousarray(image_nchw, dtype=np.float32)

    @abstractmethod
    def infer(self, image_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the network on a normalised N×3×H×W float32 batch; see the class docstring."""

    def close(self) -> None:  # noqa: B027 (optional hook, most backends free on GC)
        """Release device resources early (optional; garbage collection also does it)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Training checkpoints: atomic writes, RNG state capture, and rebuilding a model from one.

A checkpoint is a dict saved with ``torch.save``:

- ``format``: ``CHECKPOINT_FORMAT``; ``model_name``: the variant (read by the runtime's
  torch backend);
- ``model``: the network's state dict; ``model_info``: ``variant``, ``num_classes``,
  ``classes`` (catalogue names, channel order), ``input_size`` [W, H], ``mean``, ``std``;
- ``optimizer``, ``scheduler``, ``scaler``: their state dicts;
- ``epoch`` (epoch in progress, 0-based), ``batches_done`` (batches of that epoch already
  trained), ``global_step``;
- ``rng``: python / numpy / torch / CUDA / DataLoader-generator states captured at the
  START of epoch ``epoch``, so a resume replays that epoch's shuffling and augmentation
  exactly and skips its first ``batches_done`` batches;
- ``config``: the TrainConfig as a dict; ``metrics``: free-form results.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrpose_ros.training.dataset import IMAGENET_MEAN, IMAGENET_STD
from hrpose_ros.training.model import HRPoseNet, create_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CheckpointError",
    "capture_rng_state",
    "load_checkpoint",
    "model_from_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "hrpose-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not an hrpose checkpoint."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename).

    A crash during the write leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``.

    The file holds only tensors and plain data, so it loads with ``weights_only=True``
    (no arbitrary unpickling), like the runtime's torch backend does.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an hrpose checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def _numpy_state_to_plain(state: tuple) -> dict[str, Any]:
    """numpy's legacy RNG state as tensors and scalars (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = state
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _numpy_state_from_plain(state: dict[str, Any]) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """States of every random source training touches (python, numpy, torch, CUDA, loader)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of ``capture_rng_state``."""
    random.setstate(state["python"])
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


def model_from_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[HRPoseNet, dict[str, Any]]:
    """Rebuild the network stored in a checkpoint, in eval mode, and return it with ``model_info``."""
    state = load_checkpoint(path, map_location)
    info = state.get("model_info")
    if not isinstance(info, dict) or "variant" not in info or "num_classes" not in info:
        raise CheckpointError(f"checkpoint {path} has no model_info (variant, num_classes)")
    model = create_model(info["variant"], info["num_classes"], **info.get("overrides", {}))
    model.load_state_dict(state["model"])
    model.eval()
    return model, dict(info)

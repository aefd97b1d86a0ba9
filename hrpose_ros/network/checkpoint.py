"""The checkpoint format, and rebuilding the network from a checkpoint file.

A checkpoint is a dict saved with ``torch.save`` (by ``training.checkpoint.save_checkpoint``):

- ``format``: ``CHECKPOINT_FORMAT``; ``model_name``: the variant (read by the runtime's
  torch backend);
- ``model``: the network's state dict; ``model_info``: ``variant``, ``num_classes``,
  ``classes`` (catalogue names, channel order), ``input_size`` [W, H], ``mean``, ``std``;
- ``optimizer``, ``scheduler``, ``scaler``: their state dicts;
- ``epoch`` (epoch in progress, 0-based), ``batches_done`` (batches of that epoch already
  trained), ``global_step``; ``world_size`` and ``global_batch`` (``batch_size`` x world
  size) of the run that wrote it (absent before torchrun support: 1 and ``batch_size``);
- ``rng``: python / numpy / torch / CUDA / DataLoader-generator states captured at the
  START of epoch ``epoch``, so a resume replays that epoch's shuffling and augmentation
  exactly and skips its first ``batches_done`` batches; under torchrun ``rng_ranks`` holds
  every rank's (``rng`` is rank 0's);
- ``config``: the TrainConfig as a dict; ``metrics``: free-form results.

The reading side lives here, beside the network definition, because the runtime's torch
backend and the exporter need it as much as training does; writing (and the RNG state a
resume needs) is training's alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hrpose_ros.network.model import HRPoseNet, create_model

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "model_from_checkpoint"]

CHECKPOINT_FORMAT = "hrpose-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not an hrpose checkpoint."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``training.checkpoint.save_checkpoint``.

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

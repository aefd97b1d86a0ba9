"""torch.distributed plumbing of ``hrpose-train`` under ``torchrun``: one process per GPU.

``torchrun`` starts the processes (ranks) and tells each, through the environment, who it
is (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``) and where to meet (``MASTER_ADDR``,
``MASTER_PORT``). ``init_distributed`` reads those, picks the backend (NCCL on CUDA, gloo
on CPU) and the rank's device (``cuda:LOCAL_RANK``), and joins the process group with a
timeout on every collective: a rank that dies or hangs then ends the job with an error
instead of leaving the others waiting forever. Without ``torchrun`` (no ``WORLD_SIZE``, or
1) there is no process group, and every helper here is a no-op that returns its input.

The collectives the trainer needs besides DDP's gradient all-reduce are small: the mean of
the logged loss terms (so that every rank sees a NaN at the same step and stops together),
whether any rank has run out of time (``--max-minutes`` measured by each rank's clock), and
every rank's RNG state at each epoch start (rank 0 saves them all, for an exact resume).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistContext",
    "DistributedError",
    "any_rank",
    "barrier",
    "gather_objects",
    "init_distributed",
    "launch_position",
    "mean_over_ranks",
    "shutdown",
]

_log = logging.getLogger(__name__)

_REQUIRED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(RuntimeError):
    """The process group cannot start, or a collective failed or timed out (names the rank)."""


@dataclass(frozen=True)
class DistContext:
    """Who this process is in the job. The default is a single process (no process group)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str = ""
    """``nccl`` or ``gloo``; empty without a process group."""
    timeout_s: float = 0.0

    @property
    def distributed(self) -> bool:
        """True when a process group joins this process to others."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, TensorBoard logs and overlays."""
        return self.rank == 0

    def __str__(self) -> str:
        if not self.distributed:
            return f"a single process on {self.device}"
        return f"rank {self.rank} of {self.world_size} ({self.backend}, {self.device})"


def launch_position(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(rank, world size) as ``torchrun`` sets them, (0, 1) without it: for the logging set-up
    and error messages before the process group exists."""
    env = os.environ if environ is None else environ
    return int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))


def init_distributed(
    device: torch.device, timeout_min: float, environ: Mapping[str, str] | None = None
) -> DistContext:
    """Join the process group ``torchrun`` describes in the environment, if any.

    Args:
        device: the device asked for (``select_device``); under torchrun a CUDA device
            becomes ``cuda:LOCAL_RANK`` (one GPU per process).
        timeout_min: how long any collective may wait for the other ranks before it fails.
            Rank 0 validates and writes the checkpoint while the others wait, so it must
            exceed that time.
        environ: the environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=device)
    missing = [name for name in _REQUIRED_ENV if name not in env]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: start hrpose-train with torchrun"
        )
    if timeout_min <= 0:
        raise DistributedError(f"dist_timeout_min must be > 0, got {timeout_min}")
    rank, local_rank = int(env["RANK"]), int(env["LOCAL_RANK"])
    if device.type == "cuda":
        if device.index not in (None, local_rank):
            raise DistributedError(
                f"--device {device} under torchrun: each rank uses cuda:LOCAL_RANK; pass --device cuda "
                "(or auto) and choose GPUs with CUDA_VISIBLE_DEVICES"
            )
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"rank {rank} has LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are "
                "visible: lower --nproc_per_node"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    available = dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available()
    if not dist.is_available() or not available:
        raise DistributedError(f"this torch build has no {backend} backend for torch.distributed")
    timeout = timedelta(minutes=timeout_min)
    try:
        dist.init_process_group(
            backend,
            timeout=timeout,
            rank=rank,
            world_size=world,
            device_id=device if backend == "nccl" else None,
        )
    except Exception as exc:  # rendezvous failed or timed out
        raise DistributedError(
            f"rank {rank} of {world} could not join the process group at "
            f"{env['MASTER_ADDR']}:{env['MASTER_PORT']} ({backend}): {exc}"
        ) from exc
    ctx = DistContext(rank, local_rank, world, device, backend, timeout.total_seconds())
    _log.info("joined the process group as %s, collective timeout %g min", ctx, timeout_min)
    return ctx


def _collective_failed(ctx: DistContext, what: str, exc: Exception) -> DistributedError:
    return DistributedError(
        f"{ctx}: {what} failed: another rank stopped, or did not reach it within the collective "
        f"timeout of {ctx.timeout_s:g} s (dist_timeout_min): {exc}"
    )


def mean_over_ranks(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """The mean of each value over all ranks (same keys, same order on every rank)."""
    if not ctx.distributed:
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=ctx.device)
    try:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    except Exception as exc:
        raise _collective_failed(ctx, "all-reduce of the loss terms", exc) from exc
    return dict(zip(values, (tensor / ctx.world_size).tolist(), strict=True))


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when ``flag`` is true on at least one (a common decision to stop)."""
    if not ctx.distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    try:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    except Exception as exc:
        raise _collective_failed(ctx, "all-reduce of the stop flag", exc) from exc
    return bool(tensor.item() > 0)


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` alone."""
    if not ctx.distributed:
        return [obj]
    found: list[Any] = [None] * ctx.world_size
    try:
        dist.all_gather_object(found, obj)
    except Exception as exc:
        raise _collective_failed(ctx, "all-gather", exc) from exc
    return found


def barrier(ctx: DistContext) -> None:
    """Wait until every rank gets here (with the collective timeout)."""
    if not ctx.distributed:
        return
    try:
        dist.barrier(device_ids=[ctx.device.index] if ctx.backend == "nccl" else None)
    except Exception as exc:
        raise _collective_failed(ctx, "barrier", exc) from exc


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (every exit path of a distributed run passes here)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()

"""``hrpose-train``: train the teacher, or the student with integrated knowledge distillation.

Usage::

    hrpose-train teacher --config config/train_teacher.yaml
    hrpose-train student --teacher runs/teacher/last.pt --config config/train_student.yaml
    hrpose-train student ... --set optim.lr=2e-4 --set distill.beta=0   # any field, dotted
    hrpose-train teacher ... --resume                                   # continue runs/.../last.pt

Each epoch ends with an atomic checkpoint (``<out_dir>/last.pt``) holding the model,
optimiser, scheduler, AMP scaler, counters and every RNG state, so ``--resume`` continues
exactly: the weights after a resumed run equal those of an uninterrupted one. An
interruption (Ctrl-C, ``--max-steps``) mid-epoch also writes ``last.pt``; the resume then
replays that epoch's shuffling and skips the batches already trained. A NaN/inf loss stops
training with ``NonFiniteLossError`` (exit status 2). Mixed precision (float16 autocast +
GradScaler) is used on CUDA; CPU runs in float32. TensorBoard logs go to ``<out_dir>/tb``.

Under ``torchrun`` (``torchrun --nproc_per_node 8 --no-python hrpose-train teacher ...``)
each process (rank) trains a DistributedDataParallel replica on its own GPU (NCCL; gloo on
CPU) with its share of every epoch (``DistributedSampler``, reshuffled per epoch). The
global batch is ``batch_size`` x world size and ``optim.lr`` is used as given, never
rescaled (the README has the rule). Only rank 0 writes the checkpoint, TensorBoard and
overlays. ``--resume`` at the same world size continues exactly; at another global batch
it keeps the position in the data and the schedule, and says what changes.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from hrpose_ros.geometry.objects import Catalogue, load_catalogue
from hrpose_ros.geometry.targets import CORNER_OFFSETS
from hrpose_ros.network.checkpoint import load_checkpoint, model_from_checkpoint
from hrpose_ros.network.model import (
    OUTPUT_STRIDE,
    HRPoseNet,
    count_parameters,
    create_model,
    list_variants,
    variant_config,
)
from hrpose_ros.network.normalization import IMAGENET_MEAN, IMAGENET_STD
from hrpose_ros.training.checkpoint import capture_rng_state, restore_rng_state, save_checkpoint
from hrpose_ros.training.config import BATCH_NORMS, TrainConfig, config_to_dict, load_config
from hrpose_ros.training.distributed import (
    DistContext,
    DistributedError,
    any_rank,
    barrier,
    gather_objects,
    init_distributed,
    launch_position,
    mean_over_ranks,
    shutdown,
)
from hrpose_ros.training.losses import LossWeights, total_loss

__all__ = [
    "CHECKPOINT_NAME",
    "NonFiniteLossError",
    "Trainer",
    "TrainingError",
    "build_datasets",
    "build_optimizer",
    "build_scheduler",
    "load_teacher",
    "main",
    "make_loader",
    "seed_everything",
    "select_device",
]

_log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"


class TrainingError(RuntimeError):
    """Training cannot start or continue (bad teacher, mismatched resume, empty data)."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; the message gives the epoch, step and loss terms."""


def select_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available else CPU; otherwise ``torch.device(name)`` (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available")
    return device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import random  # noqa: PLC0415

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    """DataLoader worker init: seed numpy and python from the worker's torch seed."""
    import random  # noqa: PLC0415

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def load_teacher(path: str | Path, num_classes: int, device: torch.device) -> HRPoseNet:
    """Load a trained teacher, frozen: eval mode (fixed BatchNorm statistics), no gradients."""
    teacher, info = model_from_checkpoint(path)
    if info["num_classes"] != num_classes:
        raise TrainingError(
            f"teacher {path} was trained for {info['num_classes']} classes, the student has {num_classes}"
        )
    teacher.requires_grad_(False)
    return teacher.to(device).eval()


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (the paper's optimiser), AdamW or momentum SGD over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optim.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
        )
    kind = torch.optim.AdamW if cfg.optim.name == "adamw" else torch.optim.Adam
    return kind(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int = 1
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule (``optim.schedule``).

    ``step``, stepped once per epoch: lr x ``lr_gamma`` every ``lr_step_epochs`` (paper: x0.5
    every 20). ``cosine``, stepped once per optimiser step: linear warm-up from 0 over
    ``warmup_steps``, then a cosine from lr to lr x ``min_lr_fraction`` at step
    ``epochs x steps_per_epoch`` (``max_steps`` when smaller). Why cosine: a short CPU run
    wants a high learning rate early and a low one at its end, whatever its length.
    """
    if cfg.optim.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=cfg.optim.lr_step_epochs, gamma=cfg.optim.lr_gamma
        )
    total = cfg.epochs * max(steps_per_epoch, 1)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    warmup, floor = cfg.optim.warmup_steps, cfg.optim.min_lr_fraction

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(total - warmup, 1))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_loader(
    dataset: Dataset,
    cfg: TrainConfig,
    generator: torch.Generator,
    collate_fn: Callable | None = None,
    shuffle: bool = True,
    *,
    sampler: Sampler | None = None,
) -> DataLoader:
    """Shuffling loader whose order and worker seeds come from ``generator`` only; with a
    ``sampler`` (under torchrun: this rank's share of the epoch), the sampler orders it."""
    workers = cfg.data.num_workers
    size = len(dataset) if sampler is None else len(sampler)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=shuffle and size >= cfg.batch_size,
        num_workers=workers,
        collate_fn=collate_fn,
        generator=generator,
        worker_init_fn=_seed_worker,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


def build_datasets(
    cfg: TrainConfig, catalogue: Catalogue, targets_in_loader: bool = True, rank: int = 0
) -> tuple[Dataset, Dataset | None, Callable]:
    """Training (augmented) and optional validation ``BopPoseDataset``, plus their collate.

    ``targets_in_loader=False`` leaves the belief/vector targets to the training device
    (``training.targets_torch``), the fast path on a GPU. ``rank`` (under torchrun) offsets
    the augmentation seed, so that ranks draw different augmentations.
    """
    from hrpose_ros.training import dataset as ds  # noqa: PLC0415 (renderer stack only when training)

    common = {
        "catalogue": catalogue,
        "input_size": (cfg.data.input_width, cfg.data.input_height),
        "stride": OUTPUT_STRIDE,
        "sigma": cfg.data.sigma,
        "radius": cfg.data.radius,
        "vector_field": cfg.data.vector_field,
        "offset_scale": cfg.data.offset_scale,
        "seed": cfg.seed + rank,
        "with_targets": targets_in_loader,
    }
    crop = (cfg.data.crop_width, cfg.data.crop_height) if cfg.data.crop_width and cfg.data.augment else None
    augment = cfg.augment if cfg.data.augment else None
    train = ds.BopPoseDataset(cfg.data.train_dir, augment=augment, crop_size=crop, **common)
    val = ds.BopPoseDataset(cfg.data.val_dir, augment=False, **common) if cfg.data.val_dir else None
    return train, val, ds.collate


def _targets(
    batch: dict[str, Any], cfg: TrainConfig, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The batch's belief/vector targets and the offsets of the symmetric equivalents (None
    unless ``loss.symmetric_offsets`` and a ``corner_offsets`` catalogue with symmetries):
    from the loader, or built on the device from keypoints."""
    d = cfg.data
    wanted = cfg.loss.symmetric_offsets and d.vector_field == CORNER_OFFSETS
    if "belief" in batch:
        return batch["belief"], batch["vectors"], batch.get("offset_alternatives") if wanted else None
    from hrpose_ros.training.targets_torch import batch_targets, corner_offsets  # noqa: PLC0415

    image = batch["image"]
    out_hw = (image.shape[-2] // OUTPUT_STRIDE, image.shape[-1] // OUTPUT_STRIDE)
    belief, vectors = batch_targets(
        batch, num_classes, out_hw, OUTPUT_STRIDE, d.sigma, d.radius, d.vector_field, d.offset_scale
    )
    twins = batch.get("keypoints_2d_alternatives")  # (N, M, A, 9, 2)
    if not wanted or twins is None:
        return belief, vectors, None
    twins = torch.where(batch["visible"].to(twins.device)[..., None, None, None], twins, torch.nan)
    cls = batch["class_index"].to(twins.device)
    alternatives = [
        corner_offsets(twins[:, :, a], cls, num_classes, out_hw, OUTPUT_STRIDE, d.radius, d.offset_scale)
        for a in range(twins.shape[2])
    ]
    return belief, vectors, torch.stack(alternatives, dim=1)


def _autocast(device: torch.device, enabled: bool) -> Any:
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    out = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


class Trainer:
    """One training run: model (+ frozen teacher), optimiser, schedule, loaders, logging.

    Args:
        cfg: the run's configuration.
        train_set: dataset yielding dicts with ``image`` (3, H, W), ``belief`` and ``vectors``.
        catalogue: object classes, in channel order.
        collate_fn: batches the dataset's dicts (the data engine's padding collate).
        val_set: optional dataset for the per-epoch validation loss and overlays.
        teacher: frozen teacher (student role only).
        preview_set: un-augmented images for the TensorBoard overlays (default: ``val_set``;
            never the augmented training set, whose random state must only advance in training).
        dist: this process's place in a torchrun job (``training.distributed``); default: a
            single process on ``cfg.device``.

    Exact resume needs every random source of an epoch to be restorable: the RNG states
    are captured at each epoch start, and a training dataset with ``state_dict`` /
    ``load_state_dict`` methods has its own state saved alongside.

    Under torchrun, ``model`` stays the plain network (its state dict is the checkpoint's)
    and ``ddp`` is its DistributedDataParallel wrapper, through which training steps run;
    in a single process ``ddp`` is ``model``. Every rank starts from the same weights (the
    seed, and DDP's broadcast from rank 0); its loader order, worker seeds and
    augmentation are seeded with ``seed + rank``.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        train_set: Dataset,
        catalogue: Catalogue,
        *,
        collate_fn: Callable | None = None,
        val_set: Dataset | None = None,
        teacher: HRPoseNet | None = None,
        preview_set: Dataset | None = None,
        dist: DistContext | None = None,
    ) -> None:
        if cfg.role == "student" and teacher is None and (cfg.distill.alpha or cfg.distill.beta):
            raise TrainingError("student training with distillation needs a teacher checkpoint (--teacher)")
        self.cfg = cfg
        self.catalogue = catalogue
        self.dist = dist if dist is not None else DistContext(device=select_device(cfg.device))
        self.device = self.dist.device
        self.use_amp = cfg.amp and self.device.type == "cuda"
        seed_everything(cfg.seed)
        self.model = create_model(cfg.model, len(catalogue), pretrained_path=cfg.pretrained or None)
        if cfg.init_checkpoint:
            self._init_from(cfg.init_checkpoint)
        if cfg.init_backbone:
            self._init_backbone_from(cfg.init_backbone)
        self._configure_batch_norm()
        if cfg.freeze_backbone_before:
            frozen = self.model.freeze_backbone_before(cfg.freeze_backbone_before)
            _log.info("froze %d backbone tensors before %s", frozen, cfg.freeze_backbone_before)
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
            if teacher is not None:
                teacher.to(memory_format=torch.channels_last)
        if self.dist.distributed:  # same initial weights everywhere, then a random stream per rank
            seed_everything(cfg.seed + self.dist.rank)
        self.ddp = self._wrap_model()
        self.teacher = teacher.to(self.device).eval() if teacher is not None else None
        self.weights = LossWeights(
            cfg.distill.alpha,
            cfg.distill.beta,
            cfg.distill.max_locations,
            cfg.loss.peak_weight,
            cfg.loss.identity_weight,
            cfg.loss.identity_temperature,
            cfg.data.vector_field,
            cfg.loss.offset_weight,
            cfg.loss.size_weight,
        )
        self.optimizer = build_optimizer(self.model, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        self.generator = torch.Generator()
        self.generator.manual_seed(cfg.seed + self.dist.rank)
        sampler = self._rank_sampler(train_set)
        self.train_loader = make_loader(train_set, cfg, self.generator, collate_fn, sampler=sampler)
        steps_per_epoch = len(self.train_loader)
        if cfg.limit_batches:
            steps_per_epoch = min(steps_per_epoch, cfg.limit_batches)
        self.scheduler = build_scheduler(self.optimizer, cfg, steps_per_epoch)
        self._per_step_schedule = cfg.optim.schedule == "cosine"
        self.val_loader = (
            make_loader(val_set, cfg, torch.Generator(), collate_fn, shuffle=False) if val_set else None
        )
        self.preview_set = preview_set if preview_set is not None else val_set
        self.out_dir = Path(cfg.out_dir)
        self.epoch = 0
        self.batches_done = 0
        self.global_step = 0
        self._fit_start, self._out_of_time = time.monotonic(), False
        self._start_epoch_rng()
        self.history: list[dict[str, float]] = []
        self._writer: Any = None

    def _init_from(self, path: str | Path) -> None:
        """Start from the network weights of another run (``init_checkpoint``), nothing else."""
        state = load_checkpoint(path)
        info = state.get("model_info", {})
        want = {
            "variant": self.cfg.model,
            "classes": list(self.catalogue.names),
            "vector_field": self.cfg.data.vector_field,
        }
        have = {key: info.get(key) for key in want}
        if have != want:
            differ = ", ".join(f"{k} {have[k]!r} (this run: {want[k]!r})" for k in want if have[k] != want[k])
            raise TrainingError(f"init_checkpoint {path} does not fit this run: {differ}")
        self.model.load_state_dict(state["model"])
        _log.info("network weights from %s (optimiser and schedule start afresh)", path)

    def _init_backbone_from(self, path: str | Path) -> None:
        """Start the backbone from another run's (``init_backbone``); fusion and head stay fresh."""
        state = load_checkpoint(path)
        variant = state.get("model_info", {}).get("variant")
        theirs = variant_config(variant)["backbone"] if variant in list_variants() else None
        ours = variant_config(self.cfg.model)["backbone"]
        if theirs != ours:
            raise TrainingError(
                f"init_backbone {path} has variant {variant!r} (backbone {theirs!r}); "
                f"this run's {self.cfg.model!r} needs backbone {ours!r}"
            )
        prefix = "backbone."
        weights = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
        self.model.backbone.load_state_dict(weights)  # strict: every name and shape
        _log.info("backbone (%d tensors) from %s; fusion and head start afresh", len(weights), path)

    def _configure_batch_norm(self) -> None:
        """``cfg.batch_norm``: plain, synchronised over the ranks, or with frozen statistics."""
        if self.cfg.batch_norm == "frozen":
            count = self.model.freeze_norm_statistics()
            _log.info("batch_norm=frozen: %d BatchNorms keep their running statistics", count)
        elif self.cfg.batch_norm == "sync" and self.dist.distributed:
            if self.device.type != "cuda":
                raise TrainingError(
                    "batch_norm=sync needs CUDA: torch's SyncBatchNorm runs on GPUs only; on CPU use "
                    "batch_norm=frozen (or batch)"
                )
            from timm.layers import convert_sync_batchnorm  # noqa: PLC0415 (keeps timm's norm+act layers)

            self.model = convert_sync_batchnorm(self.model)
        elif self.cfg.batch_norm == "sync":
            _log.info("batch_norm=sync in a single process is plain BatchNorm")

    def _wrap_model(self) -> nn.Module:
        """The module training steps run through: DDP under torchrun, else the model itself."""
        if not self.dist.distributed:
            return self.model
        from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    def _rank_sampler(self, train_set: Dataset) -> DistributedSampler | None:
        """This rank's share of each epoch: the same permutation (``seed`` + epoch) on every
        rank, rank r taking its positions r, r + W, r + 2W, ... (equal counts: the tail is
        dropped). So global batch k is the block [k*G, (k+1)*G) of the permutation."""
        if not self.dist.distributed:
            return None
        if len(train_set) < self.dist.world_size:
            raise TrainingError(
                f"the training set has {len(train_set)} images, fewer than the {self.dist.world_size} ranks"
            )
        return DistributedSampler(
            train_set,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=self.cfg.seed,
            drop_last=True,
        )

    @property
    def global_batch(self) -> int:
        """Images per optimiser step over all ranks: ``batch_size`` x world size."""
        return self.cfg.batch_size * self.dist.world_size

    def _start_epoch_rng(self) -> None:
        """Capture the RNG state this epoch starts from, and (under torchrun) every rank's."""
        self.epoch_rng = self._capture_epoch_start()
        self._rank_rngs = gather_objects(self.epoch_rng, self.dist)

    def _capture_epoch_start(self) -> dict[str, Any]:
        state = capture_rng_state(self.generator)
        dataset = self.train_loader.dataset
        if hasattr(dataset, "state_dict"):
            state["dataset"] = dataset.state_dict()
        return state

    def _restore_epoch_start(self) -> None:
        restore_rng_state(self.epoch_rng, self.generator)
        if "dataset" in self.epoch_rng:
            self.train_loader.dataset.load_state_dict(self.epoch_rng["dataset"])

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything ``resume`` needs, plus what evaluation/export need to rebuild the model."""
        return {
            "model_name": self.cfg.model,
            "model": self.model.state_dict(),
            "model_info": {
                "variant": self.cfg.model,
                "num_classes": len(self.catalogue),
                "classes": list(self.catalogue.names),
                "object_ids": [int(o.id) for o in self.catalogue],
                "input_size": [self.cfg.data.input_width, self.cfg.data.input_height],
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                "role": self.cfg.role,
                "vector_field": self.cfg.data.vector_field,
                "offset_scale": self.cfg.data.offset_scale,
            },
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "global_step": self.global_step,
            "world_size": self.dist.world_size,
            "global_batch": self.global_batch,
            "rng": self.epoch_rng,
            **({"rng_ranks": self._rank_rngs} if self.dist.distributed else {}),
            "config": config_to_dict(self.cfg),
            "history": self.history,
        }

    def save(self) -> Path | None:
        """Write ``last.pt`` atomically (rank 0 only: every rank holds the same state)."""
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.checkpoint_path, self.state_dict())

    def _keep_epoch(self) -> None:
        """Copy the epoch-end ``last.pt`` to ``epoch_NNN.pt`` (``keep_epochs``, rank 0)."""
        if self.cfg.keep_epochs and self.dist.is_main:
            kept = self.checkpoint_path.with_name(f"epoch_{self.epoch:03d}.pt")
            shutil.copyfile(self.checkpoint_path, kept)
            _log.info("kept %s", kept)

    def resume(self, path: str | Path) -> None:
        """Restore a checkpoint written by ``save``: continue where it stopped, exactly."""
        state = load_checkpoint(path)
        info = state.get("model_info", {})
        if info.get("variant") != self.cfg.model or info.get("num_classes") != len(self.catalogue):
            raise TrainingError(
                f"cannot resume {path}: it holds {info.get('variant')} with {info.get('num_classes')} "
                f"classes, this run is {self.cfg.model} with {len(self.catalogue)}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batches_done = state["epoch"], state["batches_done"]
        self.global_step = state["global_step"]
        self._restore_rank_rng(state)
        self.history = list(state.get("history", []))
        old_world = int(state.get("world_size", 1))
        saved_batch = state.get("config", {}).get("batch_size", self.cfg.batch_size)
        old_batch = int(state.get("global_batch", saved_batch))
        if (old_world, old_batch) != (self.dist.world_size, self.global_batch):
            self._regroup(old_world, old_batch)
        _log.info(
            "resumed %s at epoch %d, batch %d, step %d", path, self.epoch, self.batches_done, self.global_step
        )

    def _restore_rank_rng(self, state: dict[str, Any]) -> None:
        """Each rank takes its own epoch-start RNG state (``rng_ranks``; rank 0's is ``rng``).
        A rank the checkpoint has no state for (another world size) keeps its fresh one."""
        saved = state.get("rng_ranks") or [state["rng"]]
        if self.dist.rank < len(saved):
            self.epoch_rng = saved[self.dist.rank]
        self._rank_rngs = gather_objects(self.epoch_rng, self.dist)

    def _regroup(self, old_world: int, old_batch: int) -> None:
        """Continue a checkpoint made with another global batch (world size or batch size).

        Under torchrun the epoch's permutation does not depend on the world size, so
        counting in samples keeps the place: the epoch continues after the samples already trained (rounded
        down to whole new batches), and the step counter, hence the per-step schedule,
        moves to the step that has seen as many samples. The learning rate is not rescaled.
        """
        samples_in_epoch, samples = self.batches_done * old_batch, self.global_step * old_batch
        old_done, old_step = self.batches_done, self.global_step
        self.batches_done = samples_in_epoch // self.global_batch
        self.global_step = samples // self.global_batch
        if self._per_step_schedule:
            self.scheduler.last_epoch = self.global_step
            lrs = zip(self.scheduler.base_lrs, self.scheduler.lr_lambdas, strict=True)
            for group, (base, factor) in zip(self.optimizer.param_groups, lrs, strict=True):
                group["lr"] = base * factor(self.global_step)
        if old_batch == self.global_batch:
            batches = "each step trains on the same samples, split over other ranks"
        else:
            batches = "the batches group other samples"
        if (old_world == 1) != (self.dist.world_size == 1):  # RandomSampler vs DistributedSampler
            batches += ", and one process orders an epoch otherwise than torchrun ranks do"
        _log.warning(
            "resuming a run of world size %d (global batch %d) at world size %d (global batch %d): epoch %d "
            "continues after %d of its samples, at batch %d (was %d); the step counter becomes %d (was %d), "
            "so the schedule keeps its place; the learning rate is not rescaled (set optim.lr yourself); "
            "%s, so the weights will not be bitwise those of an unchanged run",
            old_world,
            old_batch,
            self.dist.world_size,
            self.global_batch,
            self.epoch + 1,
            samples_in_epoch,
            self.batches_done,
            old_done,
            self.global_step,
            old_step,
            batches,
        )

    # ---------------------------------------------------------------- steps
    def _teacher_outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor] | None:
        if self.teacher is None:
            return None
        with torch.no_grad(), _autocast(self.device, self.use_amp):
            return self.teacher(image)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimiser step on one batch; returns the loss terms. Raises on a NaN/inf loss."""
        batch = _to_device(batch, self.device, self.cfg.channels_last)
        teacher_out = self._teacher_outputs(batch["image"])
        with _autocast(self.device, self.use_amp):
            out = self.ddp(batch["image"])
        belief, vectors, alternatives = _targets(batch, self.cfg, len(self.catalogue))
        loss, parts = total_loss(
            out, belief, vectors, teacher_out, self.weights, offset_alternatives=alternatives
        )
        parts = mean_over_ranks(parts, self.dist)  # every rank sees a NaN at once, and stops
        if not math.isfinite(parts["total"]):
            raise NonFiniteLossError(
                f"loss is {parts['total']} at epoch {self.epoch + 1}, step {self.global_step + 1} "
                f"(terms {parts}); lower optim.lr, check the data, or disable amp"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self._per_step_schedule:
            self.scheduler.step()
        self.global_step += 1
        return parts

    def _skip(self, it: Iterator, count: int) -> None:
        """Draw and drop ``count`` batches (resume mid-epoch: same order and augmentation)."""
        for _ in range(count):
            next(it)

    def _budget_left(self) -> bool:
        if self.cfg.max_steps and self.global_step >= self.cfg.max_steps:
            return False
        if self.cfg.max_minutes and any_rank(
            time.monotonic() - self._fit_start >= 60.0 * self.cfg.max_minutes, self.dist
        ):
            if not self._out_of_time:
                _log.warning(
                    "time budget of %g min spent: stopping (continue with --resume)", self.cfg.max_minutes
                )
            self._out_of_time = True
            return False
        return True

    def train_epoch(self) -> dict[str, float] | None:
        """Train the epoch in progress; returns its mean loss terms, or None if stopped early."""
        from tqdm import tqdm  # noqa: PLC0415

        self._restore_epoch_start()
        for sampler in (self.train_loader.sampler, self.train_loader.batch_sampler):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self.epoch)
        self.ddp.train()
        total_batches = len(self.train_loader)
        if self.cfg.limit_batches:
            total_batches = min(total_batches, self.cfg.limit_batches)
        it = iter(self.train_loader)
        self._skip(it, self.batches_done)
        sums: dict[str, float] = {}
        count, images, start = 0, 0, time.perf_counter()
        bar = tqdm(
            total=total_batches,
            initial=self.batches_done,
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            dynamic_ncols=True,
            disable=not self.dist.is_main,
        )
        with bar:
            while self.batches_done < total_batches:
                if not self._budget_left():
                    return None
                batch = next(it)
                parts = self.train_step(batch)
                self.batches_done += 1
                count += 1
                images += int(batch["image"].shape[0])
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.update(1)
                bar.set_postfix(loss=f"{parts['total']:.3g}")
                self._log_step(parts)
        elapsed = time.perf_counter() - start
        means = {f"train/{k}": v / max(count, 1) for k, v in sums.items()}
        images *= self.dist.world_size  # every rank trains as many
        means["train/images_per_s"] = images / elapsed if elapsed > 0 else float("nan")
        return means

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss terms on the validation set (empty dict without one; rank 0 only)."""
        if self.val_loader is None or not self.dist.is_main:
            return {}
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        for raw in self.val_loader:
            batch = _to_device(raw, self.device, self.cfg.channels_last)
            with _autocast(self.device, self.use_amp):
                out = self.model(batch["image"])
            belief, vectors, alternatives = _targets(batch, self.cfg, len(self.catalogue))
            teacher_out = self._teacher_outputs(batch["image"])
            _, parts = total_loss(
                out, belief, vectors, teacher_out, self.weights, offset_alternatives=alternatives
            )
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
        return {f"val/{k}": v / max(count, 1) for k, v in sums.items()}

    # ---------------------------------------------------------------- logging
    def _tb(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

            self._writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.global_step or None)
        return self._writer

    def _log_step(self, parts: dict[str, float]) -> None:
        if self.dist.is_main and self.cfg.log_every and self.global_step % self.cfg.log_every == 0:
            writer = self._tb()
            for k, v in parts.items():
                writer.add_scalar(f"step/{k}", v, self.global_step)
            writer.add_scalar("step/lr", self.optimizer.param_groups[0]["lr"], self.global_step)

    def _log_epoch(self, metrics: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        writer = self._tb()
        for k, v in metrics.items():
            writer.add_scalar(k, v, self.epoch + 1)
        if self.cfg.overlay_every and (self.epoch + 1) % self.cfg.overlay_every == 0:
            self._log_overlays(writer)
        writer.flush()

    def _log_overlays(self, writer: Any) -> None:
        from hrpose_ros.training.overlay import sample_overlays  # noqa: PLC0415

        if self.preview_set is None:
            return
        try:
            images = sample_overlays(self.model, self.preview_set, self.catalogue, self.device, count=4)
        except Exception as exc:  # an overlay must never stop a training run
            _log.warning("skipping TensorBoard overlays: %s", exc)
            return
        for i, image in enumerate(images):
            writer.add_image(f"overlay/{i}", image, self.epoch + 1, dataformats="HWC")

    # ---------------------------------------------------------------- loop
    def fit(self) -> list[dict[str, float]]:
        """Train until ``epochs`` (or ``max_steps`` / ``max_minutes``); checkpoint every epoch.
        Returns the history."""
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._fit_start, self._out_of_time = time.monotonic(), False
        _log.info(
            "training %s (%s, %.2fM parameters) as %s, amp=%s",
            self.cfg.model,
            self.cfg.role,
            count_parameters(self.model) / 1e6,
            self.dist,
            self.use_amp,
        )
        if self.dist.distributed:
            _log.info(
                "global batch %d = batch_size %d per rank x %d ranks; lr %g as configured (never scaled "
                "with the world size)",
                self.global_batch,
                self.cfg.batch_size,
                self.dist.world_size,
                self.cfg.optim.lr,
            )
        try:
            while self.epoch < self.cfg.epochs:
                means = self.train_epoch()
                if means is None:  # max_steps or max_minutes reached mid-epoch
                    self.save()
                    break
                metrics = {**means, **self.validate(), "lr": self.optimizer.param_groups[0]["lr"]}
                self._log_epoch(metrics)
                self.history.append({"epoch": self.epoch + 1, **metrics})
                _log.info(
                    "epoch %d/%d: %s",
                    self.epoch + 1,
                    self.cfg.epochs,
                    ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
                )
                if not self._per_step_schedule:
                    self.scheduler.step()
                self.epoch += 1
                self.batches_done = 0
                self._start_epoch_rng()
                self.save()
                self._keep_epoch()
                if not self._budget_left():
                    break
            barrier(self.dist)  # a clean end: every rank finished, rank 0 has saved
        except KeyboardInterrupt:
            _log.warning("interrupted: saving %s (resume with --resume)", self.checkpoint_path)
            self.save()
            raise
        finally:
            if self._writer is not None:
                self._writer.close()
        return self.history


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hrpose-train", description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=("teacher", "student"), help="what to train")
    parser.add_argument("--config", help="YAML training config (fields of TrainConfig)")
    parser.add_argument("--teacher", help="teacher checkpoint (student role)")
    parser.add_argument(
        "--init", help="start from this checkpoint's network weights, with a fresh schedule (init_checkpoint)"
    )
    parser.add_argument(
        "--init-backbone",
        help="start only the backbone from this checkpoint (any variant with the same backbone): "
        "fusion and head afresh (init_backbone)",
    )
    parser.add_argument("--data", help="training BOP folder (data.train_dir)")
    parser.add_argument("--val", help="validation BOP folder (data.val_dir)")
    parser.add_argument("--objects", help="object catalogue YAML (data.objects)")
    parser.add_argument("--out", help="output folder (out_dir)")
    parser.add_argument("--model", help="model variant (default: hrpose_teacher / hrpose_student)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N (torchrun: cuda:LOCAL_RANK per rank)")
    parser.add_argument(
        "--batch-norm",
        choices=BATCH_NORMS,
        help="BatchNorm statistics: per batch, sync (SyncBatchNorm over the ranks, CUDA), frozen",
    )
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument("--limit-batches", type=int, help="batches per epoch at most")
    parser.add_argument(
        "--max-minutes", type=float, help="stop after this many minutes of training, with a checkpoint"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        help="continue from a checkpoint (default: <out>/last.pt)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. optim.lr=2e-4 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def _config_sets_model(path: str | None) -> bool:
    """Whether the YAML config at ``path`` names a model variant (unreadable: no; load_config
    then reports the file's problem)."""
    import yaml  # noqa: PLC0415

    try:
        values = yaml.safe_load(Path(path).read_text()) if path else None
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(values, dict) and "model" in values


def _overrides(args: argparse.Namespace) -> list[str]:
    mapping = {
        "teacher": "teacher_checkpoint",
        "init": "init_checkpoint",
        "init_backbone": "init_backbone",
        "data": "data.train_dir",
        "val": "data.val_dir",
        "objects": "data.objects",
        "out": "out_dir",
        "model": "model",
        "epochs": "epochs",
        "batch_size": "batch_size",
        "device": "device",
        "batch_norm": "batch_norm",
        "max_steps": "max_steps",
        "limit_batches": "limit_batches",
        "max_minutes": "max_minutes",
    }
    out = [f"role={args.role}"]
    if args.role == "student" and args.model is None and not _config_sets_model(args.config):
        out.append("model=hrpose_student")
    out += [
        f"{key}={getattr(args, name)}" for name, key in mapping.items() if getattr(args, name) is not None
    ]
    return out + list(args.set)


def run(cfg: TrainConfig, resume: str | None = None) -> list[dict[str, float]]:
    """Build data, teacher and trainer from ``cfg`` and train; ``resume``: checkpoint path or ''.

    Under torchrun, joins the process group first and leaves it on every exit path.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx = init_distributed(select_device(cfg.device), cfg.dist_timeout_min)
    try:
        return _train(cfg, resume, ctx)
    finally:
        shutdown(ctx)


def _train(cfg: TrainConfig, resume: str | None, ctx: DistContext) -> list[dict[str, float]]:
    catalogue = load_catalogue(cfg.data.objects, cfg.data.mesh_dir or None)
    on_gpu = ctx.device.type == "cuda"
    train_set, val_set, collate = build_datasets(cfg, catalogue, targets_in_loader=not on_gpu, rank=ctx.rank)
    teacher = None
    if cfg.role == "student" and (cfg.distill.alpha or cfg.distill.beta):
        if not cfg.teacher_checkpoint:
            raise TrainingError("student training needs --teacher CKPT (or distill.alpha=0 distill.beta=0)")
        teacher = load_teacher(cfg.teacher_checkpoint, len(catalogue), ctx.device)  # every rank, eval mode
    if not ctx.is_main:  # rank 0 validates and draws the overlays
        val_set = None
    preview = val_set
    if preview is None and cfg.overlay_every and ctx.is_main:
        preview = build_datasets(replace(cfg, data=replace(cfg.data, augment=False)), catalogue)[0]
    trainer = Trainer(
        cfg,
        train_set,
        catalogue,
        collate_fn=collate,
        val_set=val_set,
        teacher=teacher,
        preview_set=preview,
        dist=ctx,
    )
    if resume is not None:
        trainer.resume(resume or trainer.checkpoint_path)
    return trainer.fit()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 on a NaN/inf loss, 1 on other errors)."""
    args = _parse_args(argv)
    rank, world = launch_position()
    who = f"rank {rank} of {world}: " if world > 1 else ""
    logging.basicConfig(  # under torchrun, ranks other than 0 report warnings and errors only
        level=logging.DEBUG if args.verbose else (logging.INFO if rank == 0 else logging.WARNING),
        format=f"%(asctime)s {who}%(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = load_config(args.config, _overrides(args))
        history = run(cfg, args.resume)
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: the trainer has saved last.pt and said so
        print(f"hrpose-train: {who}interrupted; continue with --resume", file=sys.stderr)
        return 130
    except Exception as exc:
        if world > 1:  # torchrun's failure summary then names this error as the job's root cause
            from torch.distributed.elastic.multiprocessing.errors import get_error_handler  # noqa: PLC0415

            get_error_handler().record_exception(exc)
        if isinstance(exc, NonFiniteLossError):
            print(f"hrpose-train: {who}stopped, {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, TrainingError | DistributedError | ValueError | FileNotFoundError):
            print(f"hrpose-train: {who}error: {exc}", file=sys.stderr)
            return 1
        if world > 1:
            print(
                f"hrpose-train: {who}failed: {type(exc).__name__}: {exc}\n(a collective that timed out "
                "(dist_timeout_min) or lost its peer means that another rank failed or hangs: torchrun's "
                "summary names the first failure)",
                file=sys.stderr,
            )
        raise
    if history and rank == 0:
        last = history[-1]
        print(
            f"last completed epoch {int(last['epoch'])}: loss {last.get('train/total', float('nan')):.4g}, "
            f"{last.get('train/images_per_s', float('nan')):.1f} images/s; checkpoint {cfg.out_dir}/"
            f"{CHECKPOINT_NAME}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

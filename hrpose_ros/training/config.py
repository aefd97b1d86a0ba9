"""Typed training configuration: frozen dataclasses, YAML loading and ``key=value`` overrides.

One source of defaults: the dataclass fields below are the paper's schedule (Adam, lr 1e-4
halved every 20 epochs, 120 epochs, batch 32, alpha 0.5, beta 5e-5). YAML files
(``config/train_teacher.yaml``, ``config/train_student.yaml``) and command-line overrides
(``--set optim.lr=3e-4``) replace fields by their dotted names; unknown names are errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hrpose_ros.data.augment import AugmentParams
from hrpose_ros.geometry.targets import VECTOR_FIELDS

__all__ = [
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_override",
]

ROLES = ("teacher", "student")
BATCH_NORMS = ("batch", "sync", "frozen")


class ConfigError(ValueError):
    """A configuration file or override names an unknown field or holds a bad value."""


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are shaped."""

    train_dir: str = "data/synthetic/train"
    """BOP-layout folder (or split folder) of training scenes."""
    val_dir: str = ""
    """Optional BOP-layout folder evaluated after each epoch (empty: none)."""
    objects: str = "config/objects.yaml"
    """Object catalogue (class order = network channel order)."""
    mesh_dir: str = ""
    """Optional folder with the meshes named in the catalogue."""
    input_width: int = 640
    input_height: int = 480
    sigma: float = 2.0
    """Std of the belief Gaussians (geometry.targets.belief_maps)."""
    radius: float = 3.0
    """Radius of the vector-field disc, around each corner (``to_centroid``) or each
    centroid (``corner_offsets``), output pixels."""
    vector_field: str = "to_centroid"
    """What the vector channels hold (``geometry.targets.VECTOR_FIELDS``): ``to_centroid``,
    the paper's unit vectors at the corners, or ``corner_offsets``, the offsets from the
    centroid to each corner (the CPU recipe's; the bundle records it for the decoder)."""
    offset_scale: float = 8.0
    """Output pixels per unit of a ``corner_offsets`` field."""
    augment: bool = True
    """Online augmentation (its ranges: the ``augment`` section): roll, zoom, shift, colour
    jitter, blur, noise; false trains on the plain images."""
    crop_width: int = 0
    crop_height: int = 0
    """Train on crop_width x crop_height windows around the objects, cut at the network's
    run-time scale (input_width x input_height letterbox); 0: whole images. Why: most of a
    camera frame is background, and a CPU pays for every pixel."""
    num_workers: int = 2


OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class OptimConfig:
    """Adam with a step schedule (the paper's), or AdamW with warm-up + cosine decay."""

    name: str = "adam"
    """``adam`` (the paper's), ``adamw`` (decoupled weight decay) or ``sgd`` (with
    ``momentum``). Why SGD: its step is linear in the gradient, the setting of the linear
    learning-rate rule for large global batches (Goyal et al. 2017); Adam's per-element
    normalisation turns rounding noise in near-zero gradients into whole lr-sized steps."""
    lr: float = 1e-4
    schedule: str = "step"
    """``step``: lr x lr_gamma every lr_step_epochs epochs (the paper's). ``cosine``: linear
    warm-up over warmup_steps, then cosine decay to lr x min_lr_fraction at the last step."""
    lr_step_epochs: int = 20
    lr_gamma: float = 0.5
    warmup_steps: int = 0
    min_lr_fraction: float = 0.01
    weight_decay: float = 0.0
    momentum: float = 0.9
    """SGD only."""


@dataclass(frozen=True)
class DistillConfig:
    """Integrated knowledge distillation (student only)."""

    alpha: float = 0.5
    """Weight of output distillation; 0 disables it."""
    beta: float = 5e-5
    """Weight of feature-similarity distillation; 0 disables it."""
    max_locations: int = 768
    """Cells of the pooled grid for the similarity matrices (see training.losses)."""


@dataclass(frozen=True)
class LossConfig:
    """The ground-truth term ``L_gt`` (see training.losses)."""

    peak_weight: float = 0.0
    """Extra weight of the target peaks; 0 is the paper's plain MSE. Short runs need it."""
    identity_weight: float = 0.0
    """Weight of the corner-identity cross-entropy (training.losses); 0 is the paper's loss."""
    identity_temperature: float = 10.0
    """Belief-to-logit scale of the corner-identity cross-entropy."""
    offset_weight: float = 1.0
    """Weight of the L1 term of ``data.vector_field: corner_offsets`` (training.losses)."""
    symmetric_offsets: bool = True
    """``corner_offsets``: the offset error of an object with symmetries is the least over
    its equivalent poses (``training.losses.offset_loss``); False: the canonical pose's only."""
    size_weight: float = 0.0
    """``corner_offsets``: weight of the relative size error of the placed cuboid
    (``training.losses.offset_size_loss``), from which PnP reads depth; 0: off."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs."""

    role: str = "teacher"
    """``teacher`` (no distillation) or ``student`` (distilled from ``teacher_checkpoint``)."""
    model: str = "hrpose_teacher"
    """A registered variant of network.model."""
    teacher_checkpoint: str = ""
    pretrained: str = ""
    """``imagenet`` (the variant's packaged weights), a local timm checkpoint, or empty."""
    init_checkpoint: str = ""
    """A training checkpoint whose network weights (backbone and head) start this run, e.g. to
    fine-tune on new data; optimiser, schedule and counters start afresh (``--resume``
    continues them instead). Same variant, classes and kind of vector field."""
    init_backbone: str = ""
    """A training checkpoint whose *backbone* starts this run; fusion and regressor start
    afresh. Why: a variant with another fusion or head width (or other classes) keeps what
    the backbone learnt, which is hours of CPU. The checkpoint's variant must use the same
    timm backbone; not together with ``init_checkpoint``."""
    freeze_backbone_before: str = ""
    """Freeze the backbone's parameters registered before this module (e.g. ``blocks.2``:
    the stem and the stride-2/4 blocks of EfficientNet-Lite), BatchNorms included; empty:
    train everything."""
    out_dir: str = "runs/teacher"
    epochs: int = 120
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    """``auto`` (CUDA if present), ``cpu``, ``cuda`` or ``cuda:N``."""
    amp: bool = True
    """Mixed precision (float16 autocast + GradScaler); used on CUDA only."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    max_steps: int = 0
    """Stop after this many optimiser steps in total (0: no limit)."""
    max_minutes: float = 0.0
    """Stop after this many minutes of training in this process (0: no limit), with a
    checkpoint that ``--resume`` continues. Why: a lent GPU comes for minutes, not hours."""
    limit_batches: int = 0
    """Use at most this many batches per epoch (0: all)."""
    keep_epochs: bool = False
    """Also keep each epoch's end as ``epoch_NNN.pt`` beside ``last.pt``. Why: comparing
    epochs (the KD table, picking the checkpoint to ship) needs every epoch's weights, and
    ``last.pt`` is overwritten."""
    log_every: int = 20
    """Steps between TensorBoard scalar writes."""
    overlay_every: int = 1
    """Epochs between TensorBoard sample overlays (0: never)."""
    channels_last: bool = True
    """Keep the network's weights and input images in channels-last memory order (NHWC).
    Why: oneDNN's convolutions run faster on it; on the 2-core CPU a Lite0 step of 16 crops
    of 160x160 took 222 ms against 351 ms (bf16 autocast and torch.compile were slower;
    README). The network computes the same function and gradients, to rounding."""
    batch_norm: str = "batch"
    """``batch``: each BatchNorm normalises by its own batch (per rank under torchrun), as
    usual; ``sync``: SyncBatchNorm, the statistics of the global batch over all ranks (CUDA
    only); ``frozen``: BatchNorms keep their running statistics (eval mode) and train only
    their scale and shift. Why: small per-GPU batches give noisy statistics."""
    dist_timeout_min: float = 30.0
    """Under torchrun: how long a collective waits for the other ranks before the job fails
    with an error (rank 0 validates and saves while the others wait: keep it above that)."""
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentParams = field(default_factory=AugmentParams)
    """Ranges of the online augmentation (``data.augment`` turns it on), e.g.
    ``--set augment.brightness=0.6``; the dataset's own ``data.augment.AugmentParams``."""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"role must be one of {ROLES}, got {self.role!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optim.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.optim.lr}")
        if self.data.vector_field not in VECTOR_FIELDS:
            raise ConfigError(
                f"data.vector_field must be one of {VECTOR_FIELDS}, got {self.data.vector_field!r}"
            )
        if self.init_checkpoint and self.init_backbone:
            raise ConfigError(
                "init_checkpoint and init_backbone exclude each other: the first starts the whole "
                "network from a checkpoint, the second only its backbone"
            )
        if self.loss.offset_weight < 0:
            raise ConfigError(f"loss.offset_weight must be >= 0, got {self.loss.offset_weight}")
        if not self.loss.size_weight >= 0:
            raise ConfigError(f"loss.size_weight must be >= 0, got {self.loss.size_weight}")
        if not self.data.offset_scale > 0:
            raise ConfigError(f"data.offset_scale must be > 0, got {self.data.offset_scale}")
        if self.batch_norm not in BATCH_NORMS:
            raise ConfigError(f"batch_norm must be one of {BATCH_NORMS}, got {self.batch_norm!r}")
        if self.dist_timeout_min <= 0:
            raise ConfigError(f"dist_timeout_min must be > 0, got {self.dist_timeout_min}")
        if self.max_minutes < 0:
            raise ConfigError(f"max_minutes must be >= 0, got {self.max_minutes}")
        if self.loss.peak_weight < 0:
            raise ConfigError(f"loss.peak_weight must be >= 0, got {self.loss.peak_weight}")
        if self.loss.identity_weight < 0 or self.loss.identity_temperature <= 0:
            raise ConfigError(
                f"loss.identity_weight must be >= 0 and loss.identity_temperature > 0, got "
                f"{self.loss.identity_weight}, {self.loss.identity_temperature}"
            )
        if self.optim.name not in OPTIMIZERS:
            raise ConfigError(f"optim.name must be one of {OPTIMIZERS}, got {self.optim.name!r}")
        if not 0 <= self.optim.momentum < 1:
            raise ConfigError(f"optim.momentum must lie in [0, 1), got {self.optim.momentum}")
        if self.optim.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {SCHEDULES}, got {self.optim.schedule!r}")
        if self.optim.warmup_steps < 0 or not 0 <= self.optim.min_lr_fraction <= 1:
            raise ConfigError(
                f"optim.warmup_steps must be >= 0 and optim.min_lr_fraction in [0, 1], got "
                f"{self.optim.warmup_steps}, {self.optim.min_lr_fraction}"
            )
        if (
            (self.data.crop_width > 0) != (self.data.crop_height > 0)
            or self.data.crop_width % 32
            or (self.data.crop_height % 32)
        ):
            raise ConfigError(
                f"data.crop_width/height must both be 0 or both multiples of 32, got "
                f"{self.data.crop_width}x{self.data.crop_height}"
            )
        if self.optim.lr_step_epochs < 1:
            raise ConfigError(f"optim.lr_step_epochs must be >= 1, got {self.optim.lr_step_epochs}")
        if self.data.input_width % 32 or self.data.input_height % 32:
            raise ConfigError(
                f"data.input_width/height must be multiples of 32, got "
                f"{self.data.input_width}x{self.data.input_height}"
            )


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict of a config dataclass (for YAML, checkpoints and logs)."""
    return dataclasses.asdict(cfg)


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown config field {dotted!r}; known: {', '.join(fields)}")
        default = fields[key].default_factory() if callable(fields[key].default_factory) else None
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, f"{dotted}.")
        else:
            plain = fields[key].default
            kwargs[key] = _coerce(value, None if plain is dataclasses.MISSING else plain, dotted, cls)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as error:  # a section's own check (e.g. AugmentParams' ranges)
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {error}") from None


def _coerce(value: Any, default: Any, dotted: str, cls: type) -> Any:
    """``value`` as the type of the field's ``default`` (None: any value)."""
    if default is None:
        return value
    kind = type(default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{dotted} must be true or false, got {value!r}")
        return value
    if kind is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-4" (no dot) as a string
            return float(value)
        except ValueError:
            raise ConfigError(f"{dotted} must be a number, got {value!r}") from None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, Path):
        return str(value)
    if kind is tuple and isinstance(value, list | tuple):  # YAML and --set give lists
        if len(value) != len(default):
            raise ConfigError(f"{dotted} must have {len(default)} values, got {value!r}")
        return tuple(_coerce(v, d, dotted, cls) for v, d in zip(value, default, strict=True))
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{dotted} must be {kind.__name__}, got {value!r} in {cls.__name__}")
    return value


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a nested dict; missing fields keep their defaults."""
    return _build(TrainConfig, values, "")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], value); the value is parsed as YAML (numbers, bools)."""
    if "=" not in text:
        raise ConfigError(f"override must look like key=value, got {text!r}")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override has an empty key: {text!r}")
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of nested dict ``values`` with each ``key=value`` override applied."""
    out = yaml.safe_load(yaml.safe_dump(values))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides`` (``key=value``)."""
    values: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping")
        values = loaded
    return config_from_dict(apply_overrides(values, list(overrides or [])))

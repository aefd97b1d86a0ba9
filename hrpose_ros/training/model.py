"""The HRPose network: a timm HRNet backbone, HRNetV2 fusion and a three-conv regressor.

timm-style: each variant is a name in a registry mapping to a plain config dict, and one
builder (`create_model`) turns a name into a module. Student and teacher differ only in
their backbone:

- ``hrpose_student`` ("HRPose"): ``hrnet_w18_small_v2`` (3.86M backbone parameters);
- ``hrpose_teacher``: ``hrnet_w18`` (9.56M backbone parameters);
- ``hrpose_tiny``: ``hrnet_w18_small`` (v1) with a narrow regressor, for fast CPU tests.

Architecture (see docs/architecture.md for the I/O contract):

1. timm HRNet with ``features_only=True, feature_location=''``. Its stem is the paper's two
   stride-2 3x3 convs; the four branches come out at strides 4/8/16/32. Branch channels
   are read from ``feature_info``, never hard-coded.
2. HRNetV2 fusion: bilinear upsampling of every branch to the stride-4 branch, then
   channel concatenation (18 + 36 + 72 + 144 = 270 channels for the W18 family). This
   fused map is returned as ``features`` and used by feature-similarity distillation.
3. Regressor, three convs: 3x3 conv-BN-ReLU (fused -> width), 3x3 conv-BN-ReLU
   (width -> width), then a 1x1 conv split into two heads: belief maps (C*9 channels) and
   vector fields (C*16 channels), both at stride 4, raw (no activation; MSE targets).

Regressor width (documented choice): 64. With C = 13 (LINEMOD) it has 0.21M parameters,
which puts the student at 4.07M (paper: 4.2M) and the teacher at 9.78M (paper: 9.7M),
both within 4% of the paper. The paper's two totals imply different head sizes (0.34M and
0.14M); one shared width keeps teacher and student outputs comparable for distillation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS, VECTOR_CHANNELS_PER_CLASS

__all__ = [
    "INPUT_MULTIPLE",
    "OUTPUT_STRIDE",
    "HRPoseNet",
    "ModelError",
    "count_parameters",
    "create_model",
    "list_variants",
    "load_backbone_weights",
    "register_variant",
    "variant_config",
]

_log = logging.getLogger(__name__)

OUTPUT_STRIDE = 4
"""Stride of the belief / vector outputs and of the fused feature map."""

INPUT_MULTIPLE = 32
"""Input height and width must be multiples of this (the coarsest HRNet branch)."""

_BRANCH_STRIDES = (4, 8, 16, 32)

_VARIANTS: dict[str, dict[str, Any]] = {}


class ModelError(ValueError):
    """Bad model name, configuration, input size or weight file."""


def register_variant(name: str, **cfg: Any) -> None:
    """Register a named variant: ``backbone`` (timm HRNet name) and ``head_width`` (int)."""
    if name in _VARIANTS:
        raise ModelError(f"model variant {name!r} is already registered")
    if "backbone" not in cfg:
        raise ModelError(f"model variant {name!r} needs a 'backbone'")
    _VARIANTS[name] = {"head_width": 64, **cfg}


register_variant("hrpose_student", backbone="hrnet_w18_small_v2", head_width=64)
register_variant("hrpose_teacher", backbone="hrnet_w18", head_width=64)
register_variant("hrpose_tiny", backbone="hrnet_w18_small", head_width=32)


def list_variants() -> list[str]:
    """Names of all registered variants, sorted."""
    return sorted(_VARIANTS)


def variant_config(name: str) -> dict[str, Any]:
    """A copy of the config dict of variant ``name``."""
    if name not in _VARIANTS:
        raise ModelError(f"unknown model variant {name!r}; known: {', '.join(list_variants())}")
    return dict(_VARIANTS[name])


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class HRPoseNet(nn.Module):
    """HRNet backbone + HRNetV2 fusion + regressor.

    Input ``image``: (N, 3, H, W) float32, ImageNet-normalised RGB, H and W multiples of 32.
    ``forward`` returns a dict:

    - ``belief``: (N, C*9, H/4, W/4), channel ``c*9 + k``;
    - ``vectors``: (N, C*16, H/4, W/4), channels ``c*16 + 2k`` (dx), ``c*16 + 2k + 1`` (dy);
    - ``features``: (N, F, H/4, W/4), the fused backbone map (F = sum of branch channels).
    """

    def __init__(self, backbone_name: str, num_classes: int, head_width: int = 64, variant: str = "") -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelError(f"num_classes must be >= 1, got {num_classes}")
        if head_width < 1:
            raise ModelError(f"head_width must be >= 1, got {head_width}")
        self.backbone_name = backbone_name
        self.variant = variant
        self.num_classes = num_classes
        self.backbone = timm.create_model(
            backbone_name, features_only=True, feature_location="", pretrained=False
        )
        reductions = list(self.backbone.feature_info.reduction())
        channels = list(self.backbone.feature_info.channels())
        self._branch_positions = [i for i, r in enumerate(reductions) if r >= OUTPUT_STRIDE]
        strides = tuple(reductions[i] for i in self._branch_positions)
        if strides != _BRANCH_STRIDES:
            raise ModelError(
                f"backbone {backbone_name!r} gives feature strides {strides}, expected {_BRANCH_STRIDES}"
            )
        self.feature_channels = sum(channels[i] for i in self._branch_positions)
        self.head = nn.Sequential(
            _conv_bn_relu(self.feature_channels, head_width), _conv_bn_relu(head_width, head_width)
        )
        self.belief_head = nn.Conv2d(head_width, num_classes * NUM_KEYPOINTS, kernel_size=1)
        self.vector_head = nn.Conv2d(head_width, num_classes * VECTOR_CHANNELS_PER_CLASS, kernel_size=1)

    def fuse(self, branches: list[torch.Tensor]) -> torch.Tensor:
        """HRNetV2 representation: upsample every branch to the first and concatenate."""
        size = branches[0].shape[-2:]
        upsampled = [branches[0]] + [
            F.interpolate(b, size=size, mode="bilinear", align_corners=False) for b in branches[1:]
        ]
        return torch.cat(upsampled, dim=1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network; see the class docstring for shapes."""
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            _check_input(image)
        outs = self.backbone(image)
        features = self.fuse([outs[i] for i in self._branch_positions])
        hidden = self.head(features)
        return {
            "belief": self.belief_head(hidden),
            "vectors": self.vector_head(hidden),
            "features": features,
        }


def _check_input(image: torch.Tensor) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ModelError(f"input image must be (N, 3, H, W), got {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if h % INPUT_MULTIPLE or w % INPUT_MULTIPLE:
        raise ModelError(f"input height and width must be multiples of {INPUT_MULTIPLE}, got {h}x{w}")


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def _clean_state_dict(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_backbone_weights(model: HRPoseNet, path: str | Path) -> None:
    """Load ImageNet weights of the backbone from a local timm checkpoint (.pth or .safetensors).

    The classification head of the checkpoint has no place in the feature extractor, so the
    load is non-strict; missing and unexpected keys are logged. No download ever happens.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"pretrained weight file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # noqa: PLC0415 (only for .safetensors files)

        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ModelError(f"pretrained weight file {path} does not hold a state dict")
    state = _clean_state_dict(state)
    own = model.backbone.state_dict()
    matched = [k for k in state if k in own]
    if not matched:
        raise ModelError(f"no backbone weight in {path} matches {model.backbone_name}")
    try:
        result = model.backbone.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes: another width of HRNet
        raise ModelError(f"weights in {path} do not fit {model.backbone_name}: {exc}") from exc
    _log.info("loaded %d backbone tensors from %s", len(matched), path)
    if result.missing_keys:
        _log.warning(
            "%d backbone keys missing from %s (first: %s)",
            len(result.missing_keys),
            path,
            ", ".join(result.missing_keys[:5]),
        )
    if result.unexpected_keys:
        _log.info("ignored %d checkpoint keys (e.g. the classifier)", len(result.unexpected_keys))


def create_model(
    name: str, num_classes: int, pretrained_path: str | Path | None = None, **overrides: Any
) -> HRPoseNet:
    """Build variant ``name`` for ``num_classes`` object classes.

    Args:
        name: a registered variant (``list_variants()``).
        num_classes: C, the number of object classes.
        pretrained_path: optional local timm checkpoint with ImageNet backbone weights.
        **overrides: replace entries of the variant's config (``backbone``, ``head_width``).
    """
    cfg = variant_config(name)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ModelError(f"unknown override(s) for {name!r}: {', '.join(sorted(unknown))}")
    cfg.update(overrides)
    model = HRPoseNet(cfg["backbone"], num_classes=num_classes, head_width=cfg["head_width"], variant=name)
    if pretrained_path is not None:
        load_backbone_weights(model, pretrained_path)
    return model

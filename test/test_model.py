"""HRPose network: output shapes over all variants, parameter counts, exposed features."""

from __future__ import annotations

import pytest
import timm
import torch

from hrpose_ros.network.model import (
    INPUT_MULTIPLE,
    ModelError,
    count_parameters,
    create_model,
    list_variants,
    load_backbone_weights,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    """One model per variant with C = 13, built once (timm construction is the slow part)."""
    torch.manual_seed(0)
    return {name: create_model(name, 13).eval() for name in list_variants()}


def test_registry_has_student_teacher_and_tiny() -> None:
    assert {"hrpose_student", "hrpose_teacher", "hrpose_tiny"} <= set(list_variants())


@pytest.mark.parametrize("name", list_variants())
@pytest.mark.parametrize(("num_classes", "height", "width"), [(1, 64, 64), (3, 96, 128), (8, 128, 96)])
def test_output_shapes_follow_classes_and_input_size(
    name: str, num_classes: int, height: int, width: int
) -> None:
    model = create_model(name, num_classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert out["belief"].shape == (2, num_classes * 9, height // 4, width // 4)
    assert out["vectors"].shape == (2, num_classes * 16, height // 4, width // 4)
    assert out["features"].shape == (2, model.feature_channels, height // 4, width // 4)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize(("name", "paper_m"), [("hrpose_student", 4.2), ("hrpose_teacher", 9.7)])
def test_parameter_count_is_within_ten_percent_of_the_paper(models: dict, name: str, paper_m: float) -> None:
    params_m = count_parameters(models[name]) / 1e6
    assert abs(params_m - paper_m) / paper_m < 0.10, params_m


def test_features_are_the_fused_backbone_map_of_all_four_branches(models: dict) -> None:
    model = models["hrpose_student"]
    channels = model.backbone.feature_info.channels()
    reductions = model.backbone.feature_info.reduction()
    assert (
        model.feature_channels == sum(c for c, r in zip(channels, reductions, strict=True) if r >= 4) == 270
    )


def test_features_carry_gradient_to_the_backbone(models: dict) -> None:
    model = create_model("hrpose_tiny", 2).train()
    out = model(torch.randn(2, 3, 64, 64))
    out["features"].square().mean().backward()
    assert model.backbone.conv1.weight.grad is not None
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.belief_head.weight.grad is None  # features sit before the regressor


def test_input_not_multiple_of_32_is_rejected(models: dict) -> None:
    with pytest.raises(ModelError, match=f"multiples of {INPUT_MULTIPLE}"):
        models["hrpose_tiny"](torch.zeros(1, 3, 100, 128))


def test_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(ModelError, match="hrpose_student"):
        create_model("hrpose_huge", 3)


def test_head_width_override_changes_the_regressor() -> None:
    narrow = create_model("hrpose_tiny", 2, head_width=8)
    assert narrow.belief_head.in_channels == 8
    with pytest.raises(ModelError, match="unknown override"):
        create_model("hrpose_tiny", 2, width=8)


def test_backbone_weights_load_from_a_local_timm_checkpoint(tmp_path, models: dict) -> None:
    """A classification checkpoint of the same timm architecture loads into the backbone."""
    torch.manual_seed(1)
    classifier = timm.create_model("hrnet_w18_small", pretrained=False, num_classes=10)
    path = tmp_path / "hrnet_w18_small.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in classifier.state_dict().items()}}, path)
    model = create_model("hrpose_tiny", 2, pretrained_path=path)
    assert torch.equal(model.backbone.conv1.weight, classifier.conv1.weight)


def test_backbone_weights_of_another_architecture_are_refused(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ModelError, match="no backbone weight"):
        create_model("hrpose_tiny", 2, pretrained_path=path)
    with pytest.raises(ModelError, match="not found"):
        load_backbone_weights(create_model("hrpose_tiny", 2), tmp_path / "missing.pth")


def test_frozen_stem_keeps_its_weights_and_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = create_model("hrpose_lite0", 2)
    frozen = model.freeze_backbone_before("blocks.2")
    assert frozen > 0
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(torch.randn(2, 3, 64, 64))
    (out["belief"].square().mean() + out["vectors"].square().mean()).backward()
    optimizer.step()
    after = model.backbone.state_dict()
    stem = [k for k in before if k.startswith(("conv_stem.", "bn1.", "blocks.0.", "blocks.1."))]
    later = [k for k in before if k.startswith("blocks.2.") and k.endswith(("weight", "running_mean"))]
    assert stem and later
    assert all(torch.equal(before[k], after[k]) for k in stem), "the frozen stem changed"
    assert all(not torch.equal(before[k], after[k]) for k in later), "the rest did not train"
    assert not model.backbone.bn1.training and model.backbone.blocks[2][0].bn1.training


def test_frozen_norm_statistics_make_an_images_output_independent_of_its_batch() -> None:
    """Every BatchNorm stays in eval mode through ``train()`` (running statistics unchanged),
    its scale and shift still train, and an image's output no longer depends on the batch;
    combined with a frozen stem, both sets stay frozen."""
    torch.manual_seed(0)
    model = create_model("hrpose_tiny", 1)
    assert model.freeze_norm_statistics() > 10
    model.freeze_backbone_before("layer1")
    model.train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert not any(m.training for m in norms)
    images = torch.randn(2, 3, 64, 64)
    statistics = [m.running_mean.clone() for m in norms]
    alone = model(images[:1])["belief"]
    together = model(images)["belief"][:1]
    assert torch.allclose(alone, together, atol=1e-5)
    assert all(torch.equal(a, m.running_mean) for a, m in zip(statistics, norms, strict=True))
    assert model.head[0][1].weight.requires_grad
    model.train(False)
    model.train()
    assert not any(m.training for m in norms)


def test_freezing_an_unknown_module_is_refused() -> None:
    with pytest.raises(ModelError, match="no module"):
        create_model("hrpose_tiny", 1).freeze_backbone_before("blocks.99")

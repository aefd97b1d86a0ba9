"""Losses: each term is zero for identical inputs, positive otherwise; gradients reach the student only."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from hrpose_ros.network.model import create_model
from hrpose_ros.training.losses import (
    LossWeights,
    corner_identity_loss,
    feature_similarity_loss,
    offset_loss,
    offset_size_loss,
    output_distillation_loss,
    similarity_grid,
    similarity_matrix,
    target_loss,
    total_loss,
)

torch.set_num_threads(1)


def _outputs(
    seed: int, *, n: int = 2, c: int = 2, h: int = 12, w: int = 16, f: int = 8
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "belief": torch.rand(n, c * 9, h, w, generator=g),
        "vectors": torch.randn(n, c * 16, h, w, generator=g),
        "features": torch.randn(n, f, h, w, generator=g),
    }


def test_target_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise() -> None:
    a, b = _outputs(0), _outputs(1)
    assert target_loss(a, a["belief"], a["vectors"]).item() == 0.0
    assert target_loss(a, b["belief"], a["vectors"]).item() > 0.0
    assert target_loss(a, a["belief"], b["vectors"]).item() > 0.0


def test_target_loss_is_the_sum_of_the_two_mses() -> None:
    a, b = _outputs(0), _outputs(1)
    expected = ((a["belief"] - b["belief"]) ** 2).mean() + ((a["vectors"] - b["vectors"]) ** 2).mean()
    assert torch.allclose(target_loss(a, b["belief"], b["vectors"]), expected)


def test_peak_weighting_makes_the_all_zero_output_costly() -> None:
    """A zero output misses every peak; weighted, it costs more than an error spread evenly."""
    belief = torch.zeros(1, 9, 16, 16)
    belief[0, :, 8, 8] = 1.0
    vectors = torch.zeros(1, 16, 16, 16)
    vectors[0, :, 7:10, 7:10] = 0.5
    zero = {"belief": torch.zeros_like(belief), "vectors": torch.zeros_like(vectors)}
    plain = target_loss(zero, belief, vectors)
    weighted = target_loss(zero, belief, vectors, peak_weight=20.0)
    assert torch.allclose(weighted, 21.0 * plain)  # every error sits on a peak pixel
    even = {"belief": belief + 0.05, "vectors": vectors + 0.05}  # same error everywhere
    expected = (0.05**2 * (1 + 20 * belief)).mean() + (0.05**2 * (1 + 20 * (vectors != 0).float())).mean()
    assert torch.allclose(target_loss(even, belief, vectors, 20.0), expected)
    assert target_loss(zero, zero["belief"], zero["vectors"], 20.0).item() == 0.0
    with pytest.raises(ValueError, match="peak_weight"):
        target_loss(zero, belief, vectors, peak_weight=-1.0)


def test_offset_loss_is_the_mean_absolute_error_inside_the_centroid_discs_only() -> None:
    offsets = torch.zeros(1, 32, 6, 8)
    offsets[0, 16:, 2:4, 3:5] = torch.arange(1.0, 17.0)[:, None, None]  # class 1, a 2x2 disc
    pred = torch.full_like(offsets, 7.0)  # off everywhere, also where nothing is asked
    expected = (torch.arange(1.0, 17.0) - 7.0).abs().mean()
    assert torch.allclose(offset_loss(pred, offsets), expected)
    exact = torch.where(offsets != 0, offsets, torch.tensor(-3.0))
    assert offset_loss(exact, offsets).item() == 0.0  # outside the discs is free
    assert offset_loss(pred, torch.zeros_like(offsets)).item() == 0.0


def test_target_loss_takes_the_offset_term_for_corner_offset_fields() -> None:
    a, b = _outputs(0), _outputs(1)
    mse_belief = ((a["belief"] - b["belief"]) ** 2).mean()
    got = target_loss(a, b["belief"], b["vectors"], vector_field="corner_offsets", offset_weight=0.5)
    assert torch.allclose(got, mse_belief + 0.5 * offset_loss(a["vectors"], b["vectors"]))
    with pytest.raises(ValueError, match="vector_field"):
        target_loss(a, b["belief"], b["vectors"], vector_field="sideways")
    weights = LossWeights(alpha=0.0, beta=0.0, vector_field="corner_offsets", offset_weight=0.5)
    total, _ = total_loss(a, b["belief"], b["vectors"], None, weights)
    assert torch.allclose(total, got)


def test_offset_size_loss_weighs_the_relative_size_of_the_placed_cuboid_only() -> None:
    offsets = torch.zeros(1, 32, 6, 8)
    offsets[0, 16:, 2:4, 3:5] = torch.arange(1.0, 17.0)[:, None, None]  # class 1, a 2x2 disc
    assert offset_size_loss(offsets * 1.05, offsets).item() == pytest.approx(math.log(1.05), rel=1e-5)
    assert offset_size_loss(offsets / 1.05, offsets).item() == pytest.approx(math.log(1.05), rel=1e-5)
    # the same 8 lengths in another order (the cuboid turned) is the right size
    turned = offsets.clone()
    turned[0, 16:] = offsets[0, 16:].reshape(8, 2, 6, 8).flip(0).reshape(16, 6, 8)
    assert offset_size_loss(turned, offsets).item() == pytest.approx(0.0, abs=1e-6)
    assert offset_loss(turned, offsets).item() > 1.0  # which the offsets' L1 does not forgive
    outside = torch.where(offsets != 0, offsets, torch.tensor(5.0))
    assert offset_size_loss(outside, offsets).item() == pytest.approx(0.0, abs=1e-6)
    assert offset_size_loss(offsets, torch.zeros_like(offsets)).item() == 0.0


def test_offset_size_loss_takes_the_nearest_symmetric_equivalent() -> None:
    canonical = _offsets_of([float(k + 1) for k in range(16)])
    bigger_twin = 2.0 * canonical
    assert offset_size_loss(bigger_twin, canonical).item() == pytest.approx(math.log(2.0), rel=1e-5)
    twin_allowed = offset_size_loss(bigger_twin, canonical, bigger_twin[:, None])
    assert twin_allowed.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="offset alternatives"):
        offset_size_loss(bigger_twin, canonical, bigger_twin)


def test_total_loss_adds_the_size_term_for_corner_offsets_only() -> None:
    a, b = _outputs(0), _outputs(1)
    base = LossWeights(alpha=0.0, beta=0.0, vector_field="corner_offsets")
    plain, _ = total_loss(a, b["belief"], b["vectors"], None, base)
    sized, parts = total_loss(a, b["belief"], b["vectors"], None, replace(base, size_weight=0.5))
    assert torch.allclose(sized, plain + 0.5 * offset_size_loss(a["vectors"], b["vectors"]))
    assert parts["size"] == pytest.approx(float(offset_size_loss(a["vectors"], b["vectors"])))
    centroid = LossWeights(alpha=0.0, beta=0.0, size_weight=0.5)  # to_centroid fields: no sizes
    assert "size" not in total_loss(a, b["belief"], b["vectors"], None, centroid)[1]


def test_output_distillation_is_zero_for_identical_outputs_and_positive_otherwise() -> None:
    a, b = _outputs(0), _outputs(1)
    assert output_distillation_loss(a, a).item() == 0.0
    assert output_distillation_loss(a, b).item() > 0.0


def test_feature_similarity_is_zero_for_identical_features_and_positive_otherwise() -> None:
    a, b = _outputs(0), _outputs(1)
    assert feature_similarity_loss(a["features"], a["features"]).item() == pytest.approx(0.0, abs=1e-12)
    assert feature_similarity_loss(a["features"], b["features"]).item() > 1e-4


def test_feature_similarity_compares_spatial_structure_not_channels_or_scale() -> None:
    """S is a cosine similarity: scaling features or changing the channel count leaves it unchanged."""
    f = _outputs(0, f=8)["features"]
    wider = torch.cat([f, f], dim=1)  # 16 channels, same cosine similarities
    assert feature_similarity_loss(3.0 * f, f).item() == pytest.approx(0.0, abs=1e-10)
    assert feature_similarity_loss(wider, f).item() == pytest.approx(0.0, abs=1e-10)


def test_similarity_matrix_is_cosine_similarity_of_locations() -> None:
    f = _outputs(0, n=1, h=3, w=4)["features"]
    s = similarity_matrix(f, (3, 4))
    v = f[0].flatten(1)  # (F, 12)
    i, j = 2, 7
    assert s.shape == (1, 12, 12)
    assert s[0, i, j].item() == pytest.approx(
        torch.cosine_similarity(v[:, i], v[:, j], dim=0).item(), abs=1e-6
    )
    assert torch.allclose(torch.diagonal(s[0]), torch.ones(12), atol=1e-6)


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [(120, 160, (24, 32)), (48, 64, (24, 32)), (24, 32, (24, 32)), (12, 16, (12, 16)), (160, 120, (32, 24))],
)
def test_similarity_grid_caps_locations_and_keeps_aspect(h: int, w: int, expected: tuple[int, int]) -> None:
    grid = similarity_grid(h, w, 768)
    assert grid == expected
    assert grid[0] * grid[1] <= 768


def test_feature_similarity_of_a_full_resolution_map_fits_memory() -> None:
    """640x480 input -> 120x160 stride-4 map: pooled to 24x32, so S is 768x768, not 19200x19200."""
    f = torch.randn(1, 4, 120, 160)
    loss = feature_similarity_loss(f, torch.randn(1, 4, 120, 160))
    assert torch.isfinite(loss)


def test_shape_mismatch_names_the_term() -> None:
    a, b = _outputs(0), _outputs(1, c=3)
    with pytest.raises(ValueError, match="output distillation"):
        output_distillation_loss(a, b)
    with pytest.raises(ValueError, match="belief target"):
        target_loss(a, b["belief"], a["vectors"])


def test_total_loss_weights_the_terms() -> None:
    s, t, gt = _outputs(0), _outputs(1), _outputs(2)
    w = LossWeights(alpha=0.5, beta=5e-5)
    total, parts = total_loss(s, gt["belief"], gt["vectors"], t, w)
    assert total.item() == pytest.approx(parts["gt"] + 0.5 * parts["out"] + 5e-5 * parts["fs"], rel=1e-6)
    only_gt, parts_gt = total_loss(s, gt["belief"], gt["vectors"])
    assert set(parts_gt) == {"gt", "total"}
    assert only_gt.item() == pytest.approx(parts["gt"])


def test_gradient_reaches_the_student_only() -> None:
    """Distillation against a real teacher: the teacher's weights get no gradient at all."""
    torch.manual_seed(0)
    student = create_model("hrpose_tiny", 2).train()
    teacher = create_model("hrpose_tiny", 2, head_width=16).eval()
    image = torch.randn(2, 3, 64, 64)
    t_out = teacher(image)  # deliberately WITH autograd: the losses must detach it themselves
    s_out = student(image)
    gt = {k: torch.zeros_like(v) for k, v in s_out.items()}
    loss, _ = total_loss(s_out, gt["belief"], gt["vectors"], t_out, LossWeights(alpha=0.5, beta=1.0))
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None for g in grads)
    assert student.backbone.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("term", ["out", "fs"])
def test_each_distillation_term_alone_moves_the_student(term: str) -> None:
    torch.manual_seed(0)
    student = create_model("hrpose_tiny", 1).train()
    teacher = create_model("hrpose_tiny", 1).eval()
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        t_out = teacher(image)
    s_out = student(image)
    loss = (
        output_distillation_loss(s_out, t_out)
        if term == "out"
        else feature_similarity_loss(s_out["features"], t_out["features"])
    )
    assert loss.item() > 0
    loss.backward()
    assert student.backbone.conv1.weight.grad.abs().sum() > 0
    if term == "fs":  # the regressor is after the features: no gradient from L_fs
        assert student.belief_head.weight.grad is None


def _corner_targets() -> torch.Tensor:
    """One class, a Gaussian for each of its 8 corners at 8 places, and the centroid."""
    from hrpose_ros.geometry.targets import belief_maps  # noqa: PLC0415

    kp = torch.tensor([[[4.0 + 8 * (k % 4), 4.0 + 8 * (k // 4)] for k in range(8)] + [[14.0, 8.0]]])
    return torch.from_numpy(belief_maps(kp.numpy() * 4 + 1.5, [0], 1, (16, 32), 4, 1.0))[None]


def test_identity_loss_is_low_for_the_right_channels_and_high_for_swapped_ones() -> None:
    target = _corner_targets()
    right = corner_identity_loss(target, target)
    swapped = target.clone()
    swapped[:, [0, 1]] = target[:, [1, 0]]  # corners 0 and 1 trade channels: positions still right
    wrong = corner_identity_loss(swapped, target)
    assert right.item() < 0.1 < wrong.item()
    # the heatmap MSE of the swap is tiny next to its identity loss: the reason L_id exists
    assert torch.nn.functional.mse_loss(swapped, target).item() < 0.01 * wrong.item()


def test_identity_loss_pushes_the_right_channel_up() -> None:
    target = _corner_targets()
    pred = torch.full_like(target, 0.2, requires_grad=True)
    corner_identity_loss(pred, target).backward()
    y, x = 4, 4  # output pixel of corner 0
    assert pred.grad[0, 0, y, x] < 0 < pred.grad[0, 1, y, x]  # descent raises channel 0, lowers 1


def test_identity_loss_is_zero_without_corners_and_enters_the_total() -> None:
    empty = torch.zeros(1, 9, 16, 32)
    assert corner_identity_loss(torch.rand(1, 9, 16, 32), empty).item() == 0.0
    target = _corner_targets()
    out = {
        "belief": target.clone(),
        "vectors": torch.zeros(1, 16, 16, 32),
        "features": torch.zeros(1, 4, 16, 32),
    }
    out["belief"][:, [0, 1]] = target[:, [1, 0]]
    base, _ = total_loss(out, target, out["vectors"])
    with_id, parts = total_loss(out, target, out["vectors"], weights=LossWeights(identity_weight=0.5))
    assert with_id.item() == pytest.approx(base.item() + 0.5 * parts["id"], rel=1e-6)
    assert parts["id"] > 0.1


def _offsets_of(corners_xy: list[float]) -> torch.Tensor:
    """(1, 16, 3, 3) offsets of one class, set at the centre pixel only."""
    offsets = torch.zeros(1, 16, 3, 3)
    offsets[0, :, 1, 1] = torch.tensor(corners_xy)
    return offsets


def test_offset_loss_accepts_the_symmetric_twin_of_the_target() -> None:
    """A prediction of the twin's offsets costs nothing when the twin is an alternative, and
    as much as any wrong answer when it is not; an alternative without a target at a pixel is
    never chosen there."""
    canonical = _offsets_of([float(k + 1) for k in range(16)])
    twin = _offsets_of([float(-(k + 1)) for k in range(16)])
    alternatives = twin[:, None]
    assert offset_loss(twin, canonical).item() == pytest.approx(17.0)  # mean |2 (k + 1)|
    assert offset_loss(twin, canonical, alternatives).item() == 0.0
    assert offset_loss(canonical, canonical, alternatives).item() == 0.0
    halfway = 0.5 * (canonical + twin)
    assert offset_loss(halfway, canonical, alternatives).item() == pytest.approx(
        8.5
    )  # the average is wrong for both
    no_twin_here = torch.zeros_like(alternatives)
    assert offset_loss(torch.zeros_like(canonical), canonical, no_twin_here).item() == pytest.approx(8.5)
    with pytest.raises(ValueError, match="offset alternatives"):
        offset_loss(twin, canonical, twin)

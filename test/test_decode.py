"""Decoder: sub-pixel peaks, grouping of corners to centroids, dropping, confidence."""

from __future__ import annotations

import numpy as np
import pytest

from hrpose_ros.geometry.decode import DecodeError, DecodeParams, Instance, decode, find_peaks
from hrpose_ros.geometry.keypoints import Keypoint
from hrpose_ros.geometry.targets import belief_maps, corner_offsets, to_input_coords, vector_fields

S = 4
HW = (60, 80)


def _ring(cx: float, cy: float, step: float = 6.0, phase: float = 0.3) -> np.ndarray:
    """(9, 2) output-pixel keypoints: corners on a ring around the centroid."""
    a = phase + np.arange(8) * np.pi / 4
    return np.vstack([np.stack([cx + step * np.cos(a), cy + step * np.sin(a)], axis=1), [cx, cy]])


def _maps(out_kps: list[np.ndarray], classes: list[int], num_classes: int = 1):
    kp = to_input_coords(np.stack(out_kps), S)
    cls = np.array(classes)
    return belief_maps(kp, cls, num_classes, HW, S), vector_fields(kp, cls, num_classes, HW, S), kp


def _gaussian(h: int, w: int, x: float, y: float, sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_find_peaks_is_sub_pixel_accurate():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.uniform(3, 36), rng.uniform(3, 26)
        xy, score = find_peaks(_gaussian(30, 40, x, y), 0.1)
        assert len(xy) == 1 and score[0] > 0.9
        np.testing.assert_allclose(xy[0], [x, y], atol=1e-3)


def test_find_peaks_finds_peaks_at_the_border_and_sorts_by_score():
    belief = np.maximum(_gaussian(30, 40, 0.0, 10.0), 0.5 * _gaussian(30, 40, 39.0, 29.0))
    xy, score = find_peaks(belief, 0.1)
    np.testing.assert_allclose(xy, [[0.0, 10.0], [39.0, 29.0]], atol=0.05)
    assert score[0] > score[1]


def test_find_peaks_gives_one_peak_on_a_plateau_and_respects_the_threshold():
    flat = np.zeros((10, 10), np.float32)
    flat[4:6, 4:7] = 0.5
    assert len(find_peaks(flat, 0.1)[0]) == 1
    assert len(find_peaks(flat, 0.6)[0]) == 0


def test_single_instance_is_recovered_exactly():
    out = _ring(40.3, 30.7)
    belief, vectors, kp = _maps([out], [0])
    (inst,) = decode(belief, vectors, 1)
    assert inst.class_index == 0 and inst.num_keypoints == 9
    np.testing.assert_allclose(inst.keypoints, kp[0], atol=0.02)


def test_two_instances_of_one_class_are_not_mixed():
    a, b = _ring(25.0, 30.0, phase=0.1), _ring(52.0, 28.0, phase=0.9)
    belief, vectors, kp = _maps([a, b], [0, 0])
    found = decode(belief, vectors, 1)
    assert len(found) == 2
    for inst in found:
        gt = kp[np.argmin([np.linalg.norm(inst.keypoints[8] - k[8]) for k in kp])]
        np.testing.assert_allclose(inst.keypoints, gt, atol=0.05)


def test_instances_of_several_classes_come_sorted_by_class():
    belief, vectors, _ = _maps([_ring(25.0, 30.0), _ring(25.0, 30.0), _ring(55.0, 30.0)], [2, 0, 2], 3)
    assert [i.class_index for i in decode(belief, vectors, 3)] == [0, 2, 2]


def test_corner_whose_vector_disagrees_is_not_assigned():
    out = _ring(40.0, 30.0)
    belief, vectors, kp = _maps([out], [0])
    vectors[0:2] *= -1.0  # corner 0 now points away from the centroid (180 degrees)
    (inst,) = decode(belief, vectors, 1)
    assert np.all(np.isnan(inst.keypoints[0])) and inst.scores[0] == 0.0
    np.testing.assert_allclose(inst.keypoints[1:], kp[0, 1:], atol=0.02)


def test_angle_threshold_is_applied():
    out = _ring(40.0, 30.0, step=10.0)
    belief, vectors, _ = _maps([out], [0])
    c, s = np.cos(np.radians(40)), np.sin(np.radians(40))  # rotate corner 0's vector by 40 degrees
    dx, dy = vectors[0].copy(), vectors[1].copy()
    vectors[0], vectors[1] = c * dx - s * dy, s * dx + c * dy
    assert np.isnan(decode(belief, vectors, 1, DecodeParams(angle_threshold_deg=30.0))[0].keypoints[0, 0])
    assert np.isfinite(decode(belief, vectors, 1, DecodeParams(angle_threshold_deg=45.0))[0].keypoints[0, 0])


def _rotate(v: np.ndarray, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _set_vector(vectors: np.ndarray, xy: np.ndarray, vec: np.ndarray) -> None:
    yy, xx = np.mgrid[: HW[0], : HW[1]]
    disk = (xx - xy[0]) ** 2 + (yy - xy[1]) ** 2 <= 9.0
    vectors[0][disk], vectors[1][disk] = vec


@pytest.mark.parametrize(
    ("true_off_deg", "decoy_off_deg", "winner"), [(0.0, 15.0, "true"), (20.0, 0.0, "decoy")]
)
def test_competing_peaks_keep_the_one_that_agrees_best(true_off_deg, decoy_off_deg, winner):
    out = _ring(40.0, 30.0, step=10.0)
    belief, vectors, kp = _maps([out], [0])
    decoy = out[8] + _rotate(1.6 * (out[0] - out[8]), 15.0)  # a second corner-0 peak
    belief[0] = np.maximum(belief[0], _gaussian(*HW, *decoy))
    to_centroid = (out[8] - out[0]) / np.linalg.norm(out[8] - out[0])
    from_decoy = (out[8] - decoy) / np.linalg.norm(out[8] - decoy)
    _set_vector(vectors, out[0], _rotate(to_centroid, true_off_deg))
    _set_vector(vectors, decoy, _rotate(from_decoy, decoy_off_deg))
    (inst,) = decode(belief, vectors, 1)
    expected = kp[0, 0] if winner == "true" else to_input_coords(decoy, S)
    np.testing.assert_allclose(inst.keypoints[0], expected, atol=0.05)


def test_instances_with_too_few_keypoints_are_dropped():
    out = _ring(40.0, 30.0)
    out[:5] = np.nan  # 3 corners + centroid visible
    belief, vectors, _ = _maps([out], [0])
    assert decode(belief, vectors, 1, DecodeParams(min_keypoints=5)) == []
    (inst,) = decode(belief, vectors, 1, DecodeParams(min_keypoints=4))
    assert inst.num_keypoints == 4


def test_confidence_is_mean_score_times_fraction_found():
    out = np.round(_ring(40.0, 30.0))  # integer positions: every peak scores exactly 1
    out[:3] = np.nan
    belief, vectors, _ = _maps([out], [0])
    (inst,) = decode(belief, vectors, 1)
    assert inst.confidence == pytest.approx(6 / 9)
    belief *= 0.5
    (half,) = decode(belief, vectors, 1, DecodeParams(peak_threshold=0.05, centroid_threshold=0.05))
    assert half.confidence == pytest.approx(0.5 * 6 / 9)


def test_keypoints_outside_the_map_are_missing_not_wrong():
    out = _ring(4.0, 30.0, step=7.0, phase=0.0)  # corners 3, 4, 5 fall left of the map
    out[:, 0] -= 0.5  # corner 4 at x = -3.5, corners 3 and 5 just under -1
    belief, vectors, kp = _maps([out], [0])
    (inst,) = decode(belief, vectors, 1)
    inside = out[:, 0] > -0.5
    np.testing.assert_allclose(inst.keypoints[inside], kp[0][inside], atol=0.05)
    assert np.all(np.isnan(inst.keypoints[~inside]))


def test_border_tail_of_an_outside_keypoint_is_not_a_peak():
    for x in (-5.0, -1.5, -0.7):
        assert len(find_peaks(_gaussian(30, 40, x, 12.0), 0.01)[0]) == 0
    xy, _ = find_peaks(_gaussian(30, 40, -0.3, 12.0), 0.1)  # centre inside the map's edge pixel
    np.testing.assert_allclose(xy, [[-0.3, 12.0]], atol=1e-3)


def test_smoothing_keeps_peaks_in_place():
    out = _ring(40.3, 30.6)
    belief, vectors, kp = _maps([out], [0])
    (inst,) = decode(belief, vectors, 1, DecodeParams(smoothing_sigma=1.5))
    np.testing.assert_allclose(inst.keypoints, kp[0], atol=0.05)


def test_no_centroid_means_no_instance():
    belief, vectors, _ = _maps([_ring(40.0, 30.0)], [0])
    belief[Keypoint.CENTROID] = 0.0
    assert decode(belief, vectors, 1) == []


def test_result_type_and_coordinates():
    belief, vectors, _ = _maps([_ring(40.0, 30.0)], [0])
    (inst,) = decode(belief, vectors, 1, stride=S)
    assert isinstance(inst, Instance)
    assert inst.keypoints.shape == (9, 2) and inst.scores.shape == (9,)
    assert 0.0 <= inst.confidence <= 1.0


@pytest.mark.parametrize(
    ("belief_shape", "vector_shape", "match"),
    [
        ((1, 9, 60, 80), (1, 16, 60, 80), "loop over the batch"),
        ((18, 60, 80), (16, 60, 80), "belief has 18 channels"),
        ((9, 60, 80), (32, 60, 80), "vectors has 32 channels"),
        ((9, 60, 80), (16, 60, 81), "differ in size"),
    ],
)
def test_bad_map_shapes_raise_decode_error(belief_shape, vector_shape, match):
    with pytest.raises(DecodeError, match=match):
        decode(np.zeros(belief_shape), np.zeros(vector_shape), 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"angle_threshold_deg": 0.0}, {"min_keypoints": 10}, {"refine_radius": 0}, {"smoothing_sigma": -1.0}],
)
def test_bad_params_raise_decode_error(kwargs):
    with pytest.raises(DecodeError, match=next(iter(kwargs))):
        DecodeParams(**kwargs)


def test_non_finite_maps_never_give_nan_keypoints():
    out = _ring(40.0, 30.0)
    belief, vectors, kp = _maps([out], [0])
    belief[2, 10:20, 10:20] = np.nan
    belief[3, round(out[3, 1]) + 1, round(out[3, 0])] = np.nan  # next to a real peak
    vectors[4:6, 0:5, 0:5] = np.inf
    (inst,) = decode(belief, vectors, 1)
    assert np.all(np.isfinite(inst.keypoints[[0, 1, 3, 4, 5, 6, 7, 8]]))
    assert np.isfinite(inst.confidence)
    np.testing.assert_allclose(inst.keypoints[Keypoint.CENTROID], kp[0, Keypoint.CENTROID], atol=0.02)


def test_noisy_maps_are_capped_to_the_strongest_peaks_per_map():
    rng = np.random.default_rng(5)
    belief = rng.uniform(0, 1, (13 * 9, 60, 80)).astype(np.float32)  # ~500 local maxima per map
    vectors = rng.normal(0, 1, (13 * 16, 60, 80)).astype(np.float32)
    found = decode(belief, vectors, 13, DecodeParams(max_peaks_per_map=8))
    per_class = np.bincount([inst.class_index for inst in found], minlength=13)
    assert per_class.max() <= 8  # at most one instance per kept centroid peak
    assert all(0 <= inst.confidence <= 1 for inst in found)


def test_the_cap_keeps_the_strongest_instances():
    rings = [_ring(14.0, 30.0), _ring(40.0, 30.0), _ring(66.0, 30.0)]
    parts = [_maps([r], [0]) for r in rings]
    belief = np.max([scale * b for scale, (b, _, _) in zip((0.5, 0.9, 0.7), parts, strict=True)], axis=0)
    vectors = np.sum([v for _, v, _ in parts], axis=0)
    found = decode(belief, vectors, 1, DecodeParams(max_peaks_per_map=2))
    centroids = sorted(inst.keypoints[Keypoint.CENTROID, 0] for inst in found)
    np.testing.assert_allclose(centroids, [parts[1][2][0, 8, 0], parts[2][2][0, 8, 0]], atol=0.05)
    assert len(decode(belief, vectors, 1)) == 3


def _offset_maps(out_kps: list[np.ndarray], classes: list[int], num_classes: int = 1):
    kp = to_input_coords(np.stack(out_kps), S)
    cls = np.array(classes)
    return belief_maps(kp, cls, num_classes, HW, S), corner_offsets(kp, cls, num_classes, HW, S), kp


def _decode_offsets(belief, vectors, num_classes=1, **params):
    return decode(belief, vectors, num_classes, DecodeParams(**params), S, vector_field="corner_offsets")


def test_corner_offsets_recover_several_instances_exactly():
    outs = [_ring(20.3, 20.7), _ring(55.1, 35.4, phase=1.0), _ring(30.0, 45.0, step=4.0)]
    belief, offsets, kp = _offset_maps(outs, [0, 0, 1], num_classes=2)
    found = _decode_offsets(belief, offsets, 2)
    assert [i.class_index for i in found] == [0, 0, 1]
    for inst in found:
        m = int(np.argmin(np.linalg.norm(kp[:, 8] - inst.keypoints[8], axis=1)))
        np.testing.assert_allclose(inst.keypoints, kp[m], atol=1e-3)
        assert inst.confidence > 0.95


def test_a_corner_without_a_peak_keeps_the_place_the_offsets_give():
    """Occluded (belief erased) and outside-the-image corners still get a position."""
    out = _ring(40.3, 30.7, step=8.0)
    out[5] = [-3.0, 28.0]  # outside the map: no peak, a one-sided tail
    belief, offsets, kp = _offset_maps([out], [0])
    belief[2] = 0.0  # corner 2 occluded
    (inst,) = _decode_offsets(belief, offsets)
    np.testing.assert_allclose(inst.keypoints, kp[0], atol=1e-3)
    assert inst.num_keypoints == 9 and inst.scores[2] == 0.0 and inst.confidence < 0.9
    (moved,) = _decode_offsets(belief, offsets * 1.02, snap_radius_px=0.0)  # 2 % too long, no snapping
    assert np.linalg.norm(moved.keypoints[0] - kp[0, 0]) > 0.5


def test_placed_corners_snap_to_peaks_one_to_one_own_channel_first():
    out = _ring(40.0, 30.0, step=8.0)
    belief, offsets, kp = _offset_maps([out], [0])
    offsets[:, 30, 40] *= 1.1  # the centroid pixel's offsets are a little long
    (inst,) = _decode_offsets(belief, offsets, snap_radius_px=2.0)
    np.testing.assert_allclose(inst.keypoints, kp[0], atol=1e-3)  # every corner snapped home
    (placed,) = _decode_offsets(belief, offsets)  # by default the placed corners stand
    assert np.all(np.linalg.norm(placed.keypoints[:8] - kp[0, :8], axis=1) > 0.3)  # input px
    close = out.copy()
    close[1] = close[0] + [1.5, 0.0]  # corners 0 and 1 project 1.5 px apart
    belief, offsets, kp = _offset_maps([close], [0])
    offsets[0][offsets[0] != 0] += 1.0 / 8.0  # corner 0 placed 1 px right: 0.5 px from corner 1's peak
    offsets[2][offsets[2] != 0] += 1.8 / 8.0  # corner 1 placed 1.8 px right of its peak
    (inst,) = _decode_offsets(belief, offsets, snap_radius_px=2.0)
    np.testing.assert_allclose(inst.keypoints[:2], kp[0, :2], atol=1e-3)  # each takes its own peak
    belief[1] = 0.0  # corner 1's peak gone: it must not take corner 0's
    offsets[0][offsets[0] != 0] -= 1.0 / 8.0
    offsets[2][offsets[2] != 0] -= 1.8 / 8.0
    (inst,) = _decode_offsets(belief, offsets, snap_radius_px=2.0)
    np.testing.assert_allclose(inst.keypoints[:2], kp[0, :2], atol=1e-3)
    assert inst.scores[1] < 0.5 < inst.scores[0]


def test_unknown_vector_field_or_scale_is_refused():
    belief, offsets, _ = _offset_maps([_ring(40.0, 30.0)], [0])
    with pytest.raises(DecodeError, match="vector_field"):
        decode(belief, offsets, 1, vector_field="sideways")
    with pytest.raises(DecodeError, match="offset_scale"):
        decode(belief, offsets, 1, vector_field="corner_offsets", offset_scale=0.0)
    with pytest.raises(DecodeError, match="snap_radius_px"):
        DecodeParams(snap_radius_px=-1.0)

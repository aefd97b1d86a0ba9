"""Training targets: Gaussian belief maps, corner-to-centroid vector fields and corner offsets."""

from __future__ import annotations

import numpy as np
import pytest

from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS, Keypoint
from hrpose_ros.geometry.targets import (
    TargetError,
    belief_maps,
    corner_offsets,
    to_input_coords,
    to_output_coords,
    vector_fields,
)

S = 4
HW = (30, 40)


def _instance(out_xy: np.ndarray) -> np.ndarray:
    """(9, 2) input-pixel keypoints from (9, 2) output-pixel positions."""
    return to_input_coords(np.asarray(out_xy, dtype=np.float64), S)


def _spread(cx: float, cy: float, step: float = 5.0) -> np.ndarray:
    """Output-pixel keypoints: corners on a ring around the centroid at (cx, cy)."""
    angles = np.arange(8) * np.pi / 4
    corners = np.stack([cx + step * np.cos(angles), cy + step * np.sin(angles)], axis=1)
    return np.vstack([corners, [cx, cy]])


def test_coordinate_conversion_by_hand_and_round_trip():
    # output pixel 0 covers input pixels 0..3, centre 1.5
    np.testing.assert_allclose(to_input_coords(np.array([0.0, 2.0]), 4), [1.5, 9.5])
    xy = np.array([[3.7, -1.2], [100.0, 0.0]])
    np.testing.assert_allclose(to_output_coords(to_input_coords(xy, 4), 4), xy)


def test_belief_peak_and_neighbour_values_by_hand():
    kp = _instance(_spread(20.0, 15.0))[None]
    maps = belief_maps(kp, np.array([0]), 1, HW, S, sigma=2.0)
    assert maps.shape == (9, 30, 40) and maps.dtype == np.float32
    c = Keypoint.CENTROID
    assert maps[c, 15, 20] == pytest.approx(1.0)
    assert maps[c, 15, 21] == pytest.approx(np.exp(-1 / 8))
    assert maps[c, 17, 22] == pytest.approx(np.exp(-8 / 8))


def test_belief_channels_follow_class_times_nine_plus_k():
    kp = _instance(_spread(20.0, 15.0))[None]
    maps = belief_maps(kp, np.array([2]), 3, HW, S)
    assert maps.shape[0] == 3 * NUM_KEYPOINTS
    assert np.all(maps[:18] == 0)
    for k, (x, y) in enumerate(_spread(20.0, 15.0)):
        j, i = round(x), round(y)
        assert maps[18 + k, i, j] == maps[18 + k].max() > 0.5


def test_overlapping_instances_take_the_maximum_not_the_sum():
    a, b = _spread(10.0, 15.0), _spread(13.0, 15.0)
    maps = belief_maps(np.stack([_instance(a), _instance(b)]), np.array([0, 0]), 1, HW, S, sigma=2.0)
    # midway (x = 11.5) both Gaussians give exp(-1.5^2 / 8); the max keeps one of them
    assert maps[Keypoint.CENTROID, 15, 11] == pytest.approx(np.exp(-1 / 8))
    midway = belief_maps(np.stack([_instance(a), _instance(b)]), np.array([0, 0]), 1, (30, 47), S)
    assert midway.max() <= 1.0


def test_nan_keypoints_contribute_nothing():
    kp = np.full((1, 9, 2), np.nan)
    assert not belief_maps(kp, np.array([0]), 1, HW, S).any()
    assert not vector_fields(kp, np.array([0]), 1, HW, S).any()


def test_keypoint_just_outside_the_map_adds_its_tail():
    out = _spread(20.0, 15.0)
    out[Keypoint.CENTROID] = [-1.0, 15.0]
    maps = belief_maps(_instance(out)[None], np.array([0]), 1, HW, S, sigma=2.0)
    assert maps[Keypoint.CENTROID, 15, 0] == pytest.approx(np.exp(-1 / 8))
    far = _spread(20.0, 15.0)
    far[Keypoint.CENTROID] = [-1e6, 15.0]
    assert not belief_maps(_instance(far)[None], np.array([0]), 1, HW, S)[Keypoint.CENTROID].any()


def test_vectors_are_unit_and_point_to_the_centroid_within_the_radius():
    out = _spread(20.0, 15.0, step=8.0)
    fields = vector_fields(_instance(out)[None], np.array([0]), 1, HW, S, radius=3.0)
    assert fields.shape == (16, 30, 40)
    for k in range(8):
        expected = (out[8] - out[k]) / np.linalg.norm(out[8] - out[k])
        dx, dy = fields[2 * k], fields[2 * k + 1]
        yy, xx = np.mgrid[:30, :40]
        inside = (xx - out[k, 0]) ** 2 + (yy - out[k, 1]) ** 2 <= 9.0
        np.testing.assert_allclose(dx[inside], expected[0], atol=1e-6)
        np.testing.assert_allclose(dy[inside], expected[1], atol=1e-6)
        assert not dx[~inside].any() and not dy[~inside].any()


def test_where_instances_overlap_the_nearer_corner_wins():
    a, b = _spread(10.0, 15.0), _spread(14.0, 15.0)
    a[0], b[0] = [10.0, 5.0], [13.0, 5.0]  # corner 0 of both, 3 px apart
    a[8], b[8] = [10.0, 20.0], [13.0, 0.0]  # centroids: one below, one above
    fields = vector_fields(np.stack([_instance(a), _instance(b)]), np.array([0, 0]), 1, HW, S)
    assert fields[1, 5, 11] > 0.99  # nearer a's corner: points down (+y)
    assert fields[1, 5, 12] < -0.99  # nearer b's corner: points up


def test_different_classes_do_not_interfere():
    a = _spread(10.0, 15.0)
    fields = vector_fields(np.stack([_instance(a), _instance(a[::-1])]), np.array([0, 1]), 2, HW, S)
    alone = vector_fields(_instance(a)[None], np.array([0]), 2, HW, S)
    np.testing.assert_array_equal(fields[:16], alone[:16])


@pytest.mark.parametrize(
    ("kp", "cls", "match"),
    [
        (np.zeros((1, 8, 2)), np.array([0]), "keypoints_2d"),
        (np.zeros((1, 9, 2)), np.array([3]), "class_indices"),
        (np.zeros((2, 9, 2)), np.array([0]), "class_indices"),
        (np.zeros((1, 9, 2)), np.array([0.5]), "class_indices"),
    ],
)
def test_bad_input_raises_target_error(kp, cls, match):
    with pytest.raises(TargetError, match=match):
        belief_maps(kp, cls, 2, HW, S)


def test_bad_sigma_and_radius_raise_target_error():
    kp = np.zeros((1, 9, 2))
    with pytest.raises(TargetError, match="sigma"):
        belief_maps(kp, np.array([0]), 1, HW, S, sigma=0.0)
    with pytest.raises(TargetError, match="radius"):
        vector_fields(kp, np.array([0]), 1, HW, S, radius=-1.0)


def test_no_instances_give_empty_maps():
    assert not belief_maps(np.zeros((0, 9, 2)), np.zeros(0, dtype=int), 2, HW, S).any()
    assert vector_fields(np.zeros((0, 9, 2)), np.zeros(0, dtype=int), 2, HW, S).shape == (32, 30, 40)


def test_corner_offsets_point_from_each_disc_pixel_to_every_corner():
    out = _spread(20.0, 15.0, step=8.0)
    offsets = corner_offsets(_instance(out)[None], np.array([1]), 2, HW, S, radius=2.0, scale=8.0)
    assert offsets.shape == (32, 30, 40) and not offsets[:16].any()
    yy, xx = np.mgrid[:30, :40]
    inside = (xx - 20.0) ** 2 + (yy - 15.0) ** 2 <= 4.0
    assert inside.sum() == 13
    for k in range(8):
        dx, dy = offsets[16 + 2 * k], offsets[16 + 2 * k + 1]
        np.testing.assert_allclose(dx[inside], (out[k, 0] - xx[inside]) / 8.0, atol=1e-6)
        np.testing.assert_allclose(dy[inside], (out[k, 1] - yy[inside]) / 8.0, atol=1e-6)
        assert not dx[~inside].any() and not dy[~inside].any()
    # at the centroid pixel itself, scale x offset is the corner's position relative to it
    np.testing.assert_allclose(8.0 * offsets[16::2, 15, 20], out[:8, 0] - 20.0, atol=1e-5)


def test_corner_offsets_the_nearer_centroid_wins_and_incomplete_instances_get_none():
    a, b = _spread(10.0, 15.0), _spread(13.0, 15.0, step=3.0)
    offsets = corner_offsets(np.stack([_instance(a), _instance(b)]), np.array([0, 0]), 1, HW, S, radius=2.0)
    np.testing.assert_allclose(8.0 * offsets[0, 15, 11], a[0, 0] - 11.0, atol=1e-5)  # nearer a
    np.testing.assert_allclose(8.0 * offsets[0, 15, 12], b[0, 0] - 12.0, atol=1e-5)  # nearer b
    partial = _instance(a)
    partial[3] = np.nan
    assert not corner_offsets(partial[None], np.array([0]), 1, HW, S).any()


def test_bad_offset_scale_raises_target_error():
    with pytest.raises(TargetError, match="scale"):
        corner_offsets(np.zeros((1, 9, 2)), np.array([0]), 1, HW, S, scale=0.0)
    with pytest.raises(TargetError, match="radius"):
        corner_offsets(np.zeros((1, 9, 2)), np.array([0]), 1, HW, S, radius=0.0)

"""The keypoint contract: order of the 8 corners and the centroid, edges, channel counts."""

from __future__ import annotations

import numpy as np
import pytest

from hrpose_ros.geometry.keypoints import (
    CUBOID_EDGES,
    NUM_CORNERS,
    NUM_KEYPOINTS,
    VECTOR_CHANNELS_PER_CLASS,
    Keypoint,
    cuboid_keypoints,
    keypoint_names,
)

LO = np.array([-1.0, -2.0, -3.0])
HI = np.array([4.0, 5.0, 6.0])


def test_counts_match_the_enum():
    assert len(Keypoint) == NUM_KEYPOINTS == NUM_CORNERS + 1
    assert VECTOR_CHANNELS_PER_CLASS == 2 * NUM_CORNERS
    assert Keypoint.CENTROID == NUM_KEYPOINTS - 1


def test_corner_k_takes_max_on_axes_given_by_its_bits():
    kp = cuboid_keypoints(LO, HI)
    for k in range(NUM_CORNERS):
        expected = [HI[0] if k & 4 else LO[0], HI[1] if k & 2 else LO[1], HI[2] if k & 1 else LO[2]]
        np.testing.assert_array_equal(kp[k], expected)


def test_enum_names_describe_their_corner():
    kp = cuboid_keypoints(LO, HI)
    for k in list(Keypoint)[:NUM_CORNERS]:
        parts = k.name.split("_")[1:]
        for axis, part in enumerate(parts):
            assert kp[k][axis] == (HI[axis] if part.endswith("MAX") else LO[axis])


def test_centroid_is_the_box_centre():
    kp = cuboid_keypoints(LO, HI)
    np.testing.assert_allclose(kp[Keypoint.CENTROID], [1.5, 1.5, 1.5])
    np.testing.assert_allclose(kp[Keypoint.CENTROID], kp[:NUM_CORNERS].mean(axis=0))


def test_edges_are_the_12_axis_aligned_edges():
    kp = cuboid_keypoints(LO, HI)
    assert len(set(CUBOID_EDGES)) == 12
    for a, b in CUBOID_EDGES:
        assert np.count_nonzero(kp[a] != kp[b]) == 1
    degree = np.bincount(np.ravel(CUBOID_EDGES), minlength=NUM_CORNERS)
    np.testing.assert_array_equal(degree, [3] * NUM_CORNERS)


def test_keypoint_names_are_unique_and_ordered():
    names = keypoint_names()
    assert len(set(names)) == NUM_KEYPOINTS
    assert names[-1] == "centroid"
    assert names[0] == Keypoint(0).name.lower()


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(LO, LO), (HI, LO), (np.zeros(2), np.ones(2)), (np.array([0, 0, np.nan]), np.ones(3))],
)
def test_cuboid_keypoints_rejects_bad_boxes(lo, hi):
    with pytest.raises(ValueError, match=r"bbox|bounding box"):
        cuboid_keypoints(lo, hi)

"""The torch twin of the targets agrees with the geometry core's numpy targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrpose_ros.geometry import targets as reference
from hrpose_ros.training import targets_torch as twin

torch.set_num_threads(1)

HW = (30, 40)


def _batch(seed: int, n: int = 3, m: int = 4, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Random keypoints (some NaN, some off-map, same-class neighbours) and classes, -1 = padding."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-10, 170, (n, m, 1, 2))
    kp = centre + rng.normal(0, 15, (n, m, 9, 2))
    kp[rng.random((n, m, 9)) < 0.1] = np.nan
    kp[0, 1] = kp[0, 0] + 6.0  # two instances close together: the nearer corner must win
    cls = rng.integers(0, classes, (n, m))
    cls[0, 1] = cls[0, 0]
    cls[-1, -1] = -1
    kp[-1, -1] = np.nan
    return kp, cls


@pytest.mark.parametrize("seed", range(4))
def test_belief_maps_match_the_numpy_reference(seed):
    kp, cls = _batch(seed)
    got = twin.belief_maps(torch.from_numpy(kp), torch.from_numpy(cls), 3, HW, 4, 2.0).numpy()
    for i in range(kp.shape[0]):
        keep = cls[i] >= 0
        want = reference.belief_maps(kp[i][keep], cls[i][keep], 3, HW, 4, 2.0)
        np.testing.assert_allclose(got[i], want, atol=1e-6)
    assert got.max() > 0.5


@pytest.mark.parametrize("seed", range(4))
def test_vector_fields_match_the_numpy_reference(seed):
    kp, cls = _batch(seed)
    got = twin.vector_fields(torch.from_numpy(kp), torch.from_numpy(cls), 3, HW, 4, 3.0).numpy()
    for i in range(kp.shape[0]):
        keep = cls[i] >= 0
        want = reference.vector_fields(kp[i][keep], cls[i][keep], 3, HW, 4, 3.0)
        np.testing.assert_allclose(got[i], want, atol=1e-5)
    assert np.abs(got).max() > 0.9


@pytest.mark.parametrize("seed", range(4))
def test_corner_offsets_match_the_numpy_reference(seed):
    kp, cls = _batch(seed)
    kp[1] = np.nan_to_num(kp[1], nan=30.0)  # complete instances: they get offsets
    got = twin.corner_offsets(torch.from_numpy(kp), torch.from_numpy(cls), 3, HW, 4, 2.5, 8.0).numpy()
    for i in range(kp.shape[0]):
        keep = cls[i] >= 0
        want = reference.corner_offsets(kp[i][keep], cls[i][keep], 3, HW, 4, 2.5, 8.0)
        np.testing.assert_allclose(got[i], want, atol=1e-5)
    assert np.abs(got).max() > 1.0


def test_batch_targets_build_the_kind_asked_for():
    kp, _ = _batch(1, n=1, m=2, classes=2)
    kp, cls = np.nan_to_num(kp, nan=40.0), np.array([[1, 0]])
    batch = {
        "keypoints_2d": torch.from_numpy(kp),
        "class_index": torch.from_numpy(cls),
        "visible": torch.tensor([[True, True]]),
    }
    _, offsets = twin.batch_targets(batch, 2, HW, vector_field="corner_offsets", offset_scale=4.0)
    want = reference.corner_offsets(kp[0], cls[0], 2, HW, 4, 3.0, 4.0)
    np.testing.assert_allclose(offsets[0].numpy(), want, atol=1e-5)
    with pytest.raises(twin.TargetError, match="vector_field"):
        twin.batch_targets(batch, 2, HW, vector_field="sideways")


def test_batch_targets_skip_hidden_instances():
    kp, _ = _batch(0, n=1, m=2, classes=2)
    kp = np.nan_to_num(kp, nan=50.0)
    batch = {
        "keypoints_2d": torch.from_numpy(kp),
        "class_index": torch.tensor([[0, 1]]),
        "visible": torch.tensor([[True, False]]),
    }
    belief, vectors = twin.batch_targets(batch, 2, HW)
    want = reference.belief_maps(kp[0, :1], np.array([0]), 2, HW)
    np.testing.assert_allclose(belief[0].numpy(), want, atol=1e-6)
    assert belief[0, 9:].abs().sum() == 0 and vectors[0, 16:].abs().sum() == 0


def test_bad_shapes_are_named():
    with pytest.raises(twin.TargetError, match="keypoints_2d"):
        twin.belief_maps(torch.zeros(2, 9, 2), torch.zeros(2, dtype=torch.long), 1, HW)
    with pytest.raises(twin.TargetError, match="class_indices"):
        twin.vector_fields(torch.zeros(1, 2, 9, 2), torch.zeros(2, dtype=torch.long), 1, HW)

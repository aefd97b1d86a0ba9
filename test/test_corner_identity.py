"""scripts/corner_identity.py: the corner-identity measure is 100 % for a network that
outputs the ground truth, and loses the corners whose channels (or offsets) swap."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from data_fixtures import LINEMOD_K, cuboid_catalogue, rotation

from hrpose_ros.data.bop import BopSceneWriter, GtInstance
from hrpose_ros.geometry.camera import scale_intrinsics
from hrpose_ros.geometry.objects import Catalogue
from hrpose_ros.training.dataset import BopPoseDataset

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("corner_identity", ROOT / "scripts" / "corner_identity.py")
corner_identity_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corner_identity_script)

CATALOGUE = cuboid_catalogue()
SIZE = (320, 240)


class _WithoutTwins:
    """A dataset whose samples do not say that an object has a symmetric twin."""

    def __init__(self, dataset: BopPoseDataset) -> None:
        self.dataset = dataset
        self.catalogue, self.vector_field, self.offset_scale = (
            dataset.catalogue,
            dataset.vector_field,
            dataset.offset_scale,
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = dict(self.dataset[index])
        del sample["keypoints_2d_alternatives"]
        return sample


class _Oracle(torch.nn.Module):
    """Returns the dataset's own target maps, in the order corner_identity asks for images."""

    def __init__(
        self,
        dataset: BopPoseDataset,
        swap: tuple[int, int] | None = None,
        swap_classes: bool = False,
        twin: bool = False,
        offset_gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.dataset, self.swap, self.swap_classes, self.calls = dataset, swap, swap_classes, 0
        self.twin, self.offset_gain = twin, offset_gain

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        sample = self.dataset[self.calls]
        belief, vectors = sample["belief"].clone(), sample["vectors"].clone()
        self.calls += 1
        vectors *= self.offset_gain  # < 1: every cuboid placed that much smaller
        if self.twin:  # the offsets of each pose's symmetric twin where it has one
            twin = sample["offset_alternatives"][0]
            vectors = torch.where(twin != 0, twin, vectors)
        if self.swap:
            a, b = self.swap
            for c in range(len(CATALOGUE)):
                belief[[c * 9 + a, c * 9 + b]] = belief[[c * 9 + b, c * 9 + a]]
                va, vb = c * 16 + 2 * a, c * 16 + 2 * b
                vectors[[va, va + 1, vb, vb + 1]] = vectors[[vb, vb + 1, va, va + 1]]
        if self.swap_classes:  # class 0's maps in class 1's channels and back
            belief = torch.cat([belief[9:18], belief[:9]])
        return {"belief": belief[None], "vectors": vectors[None]}


def _dataset(tmp_path: Path, catalogue: Catalogue = CATALOGUE, **kwargs) -> BopPoseDataset:
    K = scale_intrinsics(LINEMOD_K, 0.5, 0.5)
    rng = np.random.default_rng(4)
    writer = BopSceneWriter(tmp_path / "000000", image_ext="png")
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    for im_id in range(3):
        instances = [
            GtInstance(s.id, rotation(rng), np.array([x, 0.0, 0.45]))
            for s, x in zip(CATALOGUE, (-0.1, 0.1), strict=True)
        ]
        writer.add(im_id, image, K, instances, [np.ones(image.shape[:2], bool)] * 2)
    writer.close()
    return BopPoseDataset(tmp_path, catalogue, SIZE, 4, sigma=1.0, **kwargs)


def test_identity_is_full_for_the_ground_truth_and_lost_when_corners_swap(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path)
    right = corner_identity_script.corner_identity(_Oracle(dataset), dataset, images=3)
    assert right["corner_identity"] > 0.95 and right["corners"] > 30
    assert right["centroid_belief_median"] > 0.5
    swapped = corner_identity_script.corner_identity(_Oracle(dataset, swap=(0, 7)), dataset, images=3)
    # corners 0 and 7 (opposite corners) now win in each other's channel: 2 of 8 corners lost
    assert abs(swapped["corner_identity"] - 0.75) < 0.1


def test_offset_identity_is_full_for_the_ground_truth_and_lost_when_offsets_swap(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, vector_field="corner_offsets")
    right = corner_identity_script.corner_identity(_Oracle(dataset), dataset, images=3)
    assert right["offset_identity"] == 1.0 and right["offset_corners"] == 48
    assert right["offset_error_median_px"] < 1e-3
    swapped = corner_identity_script.corner_identity(_Oracle(dataset, swap=(0, 7)), dataset, images=3)
    assert swapped["offset_identity"] == 0.75 and swapped["offset_error_median_px"] < 1e-3
    assert abs(right["offset_size_ratio_median"] - 1.0) < 1e-6
    assert abs(swapped["offset_size_ratio_median"] - 1.0) < 1e-6  # the same corners, other labels
    small = corner_identity_script.corner_identity(_Oracle(dataset, offset_gain=0.9), dataset, images=3)
    assert abs(small["offset_size_ratio_median"] - 0.9) < 0.02
    assert "offset_identity" not in corner_identity_script.corner_identity(
        _Oracle(_dataset(tmp_path / "paper")), _dataset(tmp_path / "paper"), images=3
    )


def test_offsets_of_the_symmetric_twin_are_right_for_a_symmetric_object_only(tmp_path: Path) -> None:
    half_turn = np.array([-1.0, 0, 0, 0, 0, -1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1])
    symmetric = Catalogue([replace(CATALOGUE[0], symmetric=True, symmetries=(half_turn,)), CATALOGUE[1]])
    dataset = _dataset(tmp_path, symmetric, vector_field="corner_offsets")
    twin = corner_identity_script.corner_identity(_Oracle(dataset, twin=True), dataset, images=3)
    assert twin["offset_identity"] == 1.0 and twin["offset_error_median_px"] < 1e-3
    assert set(twin) >= {"offset_identity/" + spec.name for spec in symmetric}
    # the same offsets scored as if the object had no twin: its corners are the wrong ones
    blind = corner_identity_script.corner_identity(
        _Oracle(dataset, twin=True), _WithoutTwins(dataset), images=3
    )
    assert blind[f"offset_identity/{CATALOGUE[0].name}"] < 0.5
    assert blind[f"offset_identity/{CATALOGUE[1].name}"] == 1.0


def test_detection_finds_every_centroid_and_none_in_the_wrong_class(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path)
    right = corner_identity_script.corner_identity(_Oracle(dataset), dataset, images=3)
    for t in corner_identity_script.DETECTION_THRESHOLDS:
        assert right[f"centroid_recall@{t}"] == 1.0
        assert right[f"false_peaks_per_image@{t}"] == 0.0
    swapped = corner_identity_script.corner_identity(_Oracle(dataset, swap_classes=True), dataset, images=3)
    # each object is found in the other object's channel: no recall, 2 false peaks per image
    assert swapped["centroid_recall@0.1"] == 0.0
    assert swapped["false_peaks_per_image@0.1"] == 2.0

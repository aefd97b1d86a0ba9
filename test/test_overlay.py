"""Training overlays decode the network's outputs with the kind of vector field it was
trained on: a network that outputs the targets gets its cuboids drawn with either kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import render_box_scene

from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.training.dataset import BopPoseDataset
from hrpose_ros.training.overlay import sample_overlays

torch.set_num_threads(1)


class _Oracle(torch.nn.Module):
    """Returns the dataset's own targets, in the order sample_overlays asks for images."""

    def __init__(self, dataset: BopPoseDataset) -> None:
        super().__init__()
        self.dataset, self.calls = dataset, 0

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        sample = self.dataset[self.calls]
        self.calls += 1
        return {"belief": sample["belief"][None], "vectors": sample["vectors"][None]}


class _Blind(_Oracle):
    """Finds nothing: its overlays show the ground truth alone."""

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {key: torch.zeros_like(value) for key, value in super().forward(image).items()}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return render_box_scene(tmp_path_factory.mktemp("scene"), 3)


def _drawn_pixels(model_images: list[np.ndarray], blind_images: list[np.ndarray]) -> list[int]:
    """Per image, the pixels a prediction drew (those that differ from the blind overlay)."""
    return [int(np.any(a != b, axis=-1).sum()) for a, b in zip(model_images, blind_images, strict=True)]


@pytest.mark.parametrize("vector_field", ["to_centroid", "corner_offsets"])
def test_overlays_draw_the_decoded_cuboids_for_either_kind(scene, vector_field: str) -> None:
    objects, split = scene
    catalogue = load_catalogue(objects)
    dataset = BopPoseDataset(split, catalogue, (128, 96), 4, vector_field=vector_field)
    cpu = torch.device("cpu")
    images = sample_overlays(_Oracle(dataset), dataset, catalogue, cpu, count=3)
    blind = sample_overlays(_Blind(dataset), dataset, catalogue, cpu, count=3)
    assert len(images) == 3
    assert all(n > 30 for n in _drawn_pixels(images, blind))  # a predicted cuboid on each


def test_offsets_read_as_the_papers_vectors_draw_no_cuboid(scene) -> None:
    """The check has teeth: decoded with the wrong kind, offsets give no pose."""
    objects, split = scene
    catalogue = load_catalogue(objects)
    dataset = BopPoseDataset(split, catalogue, (128, 96), 4, vector_field="corner_offsets")
    dataset.vector_field = "to_centroid"  # what sample_overlays reads: now the wrong kind
    dataset_targets = BopPoseDataset(split, catalogue, (128, 96), 4, vector_field="corner_offsets")
    cpu = torch.device("cpu")
    images = sample_overlays(_Oracle(dataset_targets), dataset, catalogue, cpu, count=3)
    blind = sample_overlays(_Blind(dataset_targets), dataset, catalogue, cpu, count=3)
    assert _drawn_pixels(images, blind) == [0, 0, 0]

"""scripts/keypoint_precision.py: exact keypoints pass ADD(-S), and noisier ones pass less."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from data_fixtures import LINEMOD_K, cuboid_catalogue, rotation

from hrpose_ros.data.bop import BopImage, GtInstance

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "keypoint_precision", ROOT / "scripts" / "keypoint_precision.py"
)
keypoint_precision = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(keypoint_precision)


def _images(count: int) -> list[BopImage]:
    rng = np.random.default_rng(5)
    images = []
    for im_id in range(count):
        instances = (
            GtInstance(1, rotation(rng), np.array([-0.1, 0.02, 0.8])),
            GtInstance(2, rotation(rng), np.array([0.1, -0.03, 0.9])),
            GtInstance(99, rotation(rng), np.array([0.0, 0.0, 0.7])),  # not in the catalogue: skipped
        )
        images.append(BopImage(Path("."), 0, im_id, LINEMOD_K, 1.0, instances, None, Path("x.png")))
    return images


def test_exact_keypoints_pass_and_noise_costs_accuracy() -> None:
    images, catalogue = _images(20), cuboid_catalogue()
    exact, count = keypoint_precision.add_accuracy_under_noise(images, catalogue, 0.0)
    assert exact == 1.0 and count == 40
    small, _ = keypoint_precision.add_accuracy_under_noise(images, catalogue, 1.0)
    large, _ = keypoint_precision.add_accuracy_under_noise(images, catalogue, 12.0)
    assert small > 0.8
    assert large < small - 0.3

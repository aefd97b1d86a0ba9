"""Evaluation: scoring of known poses, matching, tables, JSON + PNG, params/FLOPs, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import BOX_ENTRY, render_config, write_objects_yaml

from hrpose_ros.data.bop import read_dataset
from hrpose_ros.data.synthetic import generate_dataset
from hrpose_ros.evaluation.report import format_tables, plot_accuracy
from hrpose_ros.evaluation.runner import EvalError, evaluate
from hrpose_ros.evaluation.scoring import match_detections
from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.network.model import count_parameters, create_model
from hrpose_ros.runtime.estimator import Detection
from hrpose_ros.training.config import DataConfig, TrainConfig
from hrpose_ros.training.evaluate import main, model_cost
from hrpose_ros.training.train import Trainer, build_datasets

torch.set_num_threads(1)

WIDTH, HEIGHT = 128, 96


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(catalogue YAML, BOP split) of 6 rendered images with 1-2 of two box objects each."""
    root = tmp_path_factory.mktemp("evalscene")
    cube = {
        "name": "cube",
        "id": 7,
        "bbox_min": [-0.03, -0.03, -0.03],
        "bbox_size": [0.06, 0.06, 0.06],
        "diameter": float(np.linalg.norm([0.06, 0.06, 0.06])),
        "symmetric": True,
        "color": [0.2, 0.4, 0.9],
    }
    path = write_objects_yaml(root / "objects.yaml", [BOX_ENTRY, cube])
    cfg = render_config(WIDTH, HEIGHT, objects_per_image=(1, 2), distance_m=(0.25, 0.4))
    return path, generate_dataset(root / "data", load_catalogue(path), cfg, 6, seed=5, progress=False)


class _Bundle:
    def __init__(self, classes: list[str]) -> None:
        self.classes = tuple(classes)


class PoseOracle:
    """Stands in for the runtime Estimator: returns the ground-truth pose, or a corrupted one.

    ``shift_m`` is added to t_z for the images whose im_id is odd, and t is scaled by
    ``1 + depth_scale`` there (along its ray), so the expected scores are known exactly; it
    lets the test check the scoring, not the network.
    """

    def __init__(self, catalogue, images, shift_m: float, depth_scale: float = 0.0) -> None:
        self.bundle = _Bundle(catalogue.names)
        self.catalogue = catalogue
        self.images = list(images)  # evaluate() calls in this order
        self.shift_m = shift_m
        self.depth_scale = depth_scale
        self.calls: list[tuple] = []

    def __call__(self, image: np.ndarray, K: np.ndarray, encoding: str = "bgr8") -> list[Detection]:
        im = self.images[len(self.calls)]
        assert np.array_equal(K, im.K)
        self.calls.append(image.shape)
        ids = {o.id: c for c, o in enumerate(self.catalogue)}
        out = []
        for gt in im.instances:
            c = ids[gt.obj_id]
            t = gt.t + np.array([0.0, 0.0, self.shift_m if im.im_id % 2 else 0.0])
            t = t * (1.0 + self.depth_scale if im.im_id % 2 else 1.0)
            kp = project_points(self.catalogue[c].keypoints, gt.R, t, K)
            out.append(Detection(self.catalogue[c].name, gt.obj_id, c, 0, gt.R, t, 1.0, kp, 0.0, 9))
        return out


def test_perfect_poses_score_100_percent_and_zero_error(scene) -> None:
    catalogue = load_catalogue(scene[0])
    images = read_dataset(scene[1])
    result = evaluate(PoseOracle(catalogue, images, 0.0), images, catalogue, progress=False)
    assert result.images == 6
    assert sum(o.instances for o in result.objects) == sum(len(i.instances) for i in images)
    for o in result.objects:
        if o.instances:
            assert o.add_accuracy == 100.0 and o.proj_accuracy == 100.0
            assert o.mean_rot_deg == pytest.approx(0.0, abs=1e-6)
            assert o.mean_trans_m == pytest.approx(0.0, abs=1e-9)
    assert result.average["add_accuracy"] == 100.0


def test_poses_off_by_a_diameter_fail_on_the_odd_images(scene) -> None:
    catalogue = load_catalogue(scene[0])
    images = read_dataset(scene[1])
    result = evaluate(PoseOracle(catalogue, images, 0.15), images, catalogue, progress=False)
    odd = sum(len(i.instances) for i in images if i.im_id % 2)
    total = sum(len(i.instances) for i in images)
    passed = sum(r.add_rel < 0.1 for r in result.instances)
    assert passed == total - odd
    shifted = [r for r in result.instances if r.trans_m > 0]
    assert len(shifted) == odd and all(r.trans_m == pytest.approx(0.15) for r in shifted)
    assert all(r.rot_deg == pytest.approx(0.0, abs=1e-6) for r in result.instances)


def test_depth_errors_along_the_ray_are_reported_apart(scene) -> None:
    catalogue = load_catalogue(scene[0])
    images = read_dataset(scene[1])
    result = evaluate(PoseOracle(catalogue, images, 0.0, depth_scale=0.25), images, catalogue, progress=False)
    odd = [i.im_id % 2 == 1 for i in images for _ in i.instances]
    assert [r.depth_rel for r in result.instances] == pytest.approx([0.25 if o else 0.0 for o in odd])
    # 25 % too far fails ADD (diameters of 10-13 cm at 0.25-0.4 m); at the true depth each is exact
    assert sum(r.add_rel < 0.1 for r in result.instances) == odd.count(False)
    assert all(r.add_rel_true_depth == pytest.approx(0.0, abs=1e-9) for r in result.instances)
    curves = result.to_dict()["curves"]
    assert curves["depth_pct"][0] == 0.0 and curves["depth_pct"][-1] == pytest.approx(20.0)
    for c, o in enumerate(result.objects):
        mine = [25.0 if odd[k] else 0.0 for k, r in enumerate(result.instances) if r.class_index == c]
        if mine:
            assert o.median_depth_err_pct == pytest.approx(float(np.median(mine)))
            assert o.add_accuracy_true_depth == 100.0
            # within t % of the depth: none at t = 0, then the exact ones, up to 20 %
            exact = 100.0 * mine.count(0.0) / len(mine)
            assert curves["objects"][o.name]["depth"] == pytest.approx([0.0] + [exact] * 40)
    table = format_tables(result)
    assert "depth err [%]" in table and "ADD(-S) would be 100.00 %" in table


def test_missing_detections_count_as_failures(scene) -> None:
    catalogue = load_catalogue(scene[0])
    image = read_dataset(scene[1])[0]
    pairs = match_detections([], image, catalogue)
    assert len(pairs) == len(image.instances) and all(det is None for _, _, det in pairs)


def test_each_ground_truth_gets_the_nearest_detection_of_its_class(scene) -> None:
    catalogue = load_catalogue(scene[0])
    image = next(i for i in read_dataset(scene[1]) if len(i.instances) == 2)
    oracle = PoseOracle(catalogue, [image], 0.0)
    dets = oracle(np.zeros((HEIGHT, WIDTH, 3), np.uint8), image.K)
    pairs = match_detections(list(reversed(dets)), image, catalogue)
    for c, gt, det in pairs:
        assert det is not None and det.class_index == c and np.allclose(det.t, gt.t)


def test_classes_must_match_the_catalogue(scene) -> None:
    catalogue = load_catalogue(scene[0])
    images = read_dataset(scene[1])
    oracle = PoseOracle(catalogue, images, 0.0)
    oracle.bundle = _Bundle(["cube", "box"])
    with pytest.raises(EvalError, match="differ"):
        evaluate(oracle, images, catalogue, progress=False)


def test_tables_and_plot_are_written(scene, tmp_path) -> None:
    catalogue = load_catalogue(scene[0])
    images = read_dataset(scene[1])
    result = evaluate(PoseOracle(catalogue, images, 0.15), images, catalogue, progress=False)
    table = format_tables(result)
    assert "| box |" in table and "| cube* |" in table and "**average**" in table
    png = plot_accuracy(result, tmp_path / "acc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = result.to_dict()
    curve = data["curves"]["mean_add"]
    assert curve == sorted(curve)  # accuracy grows with the threshold
    assert data["curves"]["mean_depth"] == sorted(data["curves"]["mean_depth"])
    at_protocol = data["curves"]["add_fraction"].index(pytest.approx(0.1))
    assert curve[at_protocol] == pytest.approx(result.average["add_accuracy"])


def test_model_cost_counts_parameters_and_flops_that_scale_with_pixels() -> None:
    small = model_cost("hrpose_tiny", 2, (64, 64))
    large = model_cost("hrpose_tiny", 2, (128, 128))
    assert small["params_m"] == pytest.approx(count_parameters(create_model("hrpose_tiny", 2)) / 1e6)
    assert large["gflops"] == pytest.approx(4 * small["gflops"], rel=0.02)


def test_head_share_is_the_flops_outside_the_backbone() -> None:
    """A fraction strictly between 0 and 1; Lite0's reduced sum fusion keeps fusion +
    regressor below half of the network's FLOPs."""
    lite = model_cost("hrpose_lite0", 8, (128, 96))
    tiny = model_cost("hrpose_tiny", 8, (128, 96))
    for cost in (lite, tiny):
        assert 0.0 < cost["head_flops_share"] < 1.0
    assert lite["head_flops_share"] < 0.5


def test_cli_evaluates_a_checkpoint_through_the_estimator(scene, tmp_path, capsys) -> None:
    """A (random) checkpoint runs end to end: tables on stdout, eval.json and accuracy.png written."""
    objects, split = scene
    cfg = TrainConfig(
        model="hrpose_tiny",
        out_dir=str(tmp_path / "run"),
        device="cpu",
        amp=False,
        data=DataConfig(
            train_dir=str(split),
            objects=str(objects),
            input_width=WIDTH,
            input_height=HEIGHT,
            augment=False,
            num_workers=0,
        ),
    )
    catalogue = load_catalogue(objects)
    train_set, _, collate = build_datasets(cfg, catalogue)
    Trainer(cfg, train_set, catalogue, collate_fn=collate).save()
    out = tmp_path / "eval"
    code = main(
        [
            "--checkpoint",
            str(tmp_path / "run" / "last.pt"),
            "--data",
            str(split),
            "--objects",
            str(objects),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ADD(-S) %" in printed and "GFLOPs" in printed
    data = json.loads((out / "eval.json").read_text())
    assert data["images"] == 6 and data["model"]["variant"] == "hrpose_tiny"
    assert 0.0 <= data["average"]["add_accuracy"] <= 100.0
    assert (out / "accuracy.png").stat().st_size > 0


def test_cli_reports_a_missing_checkpoint(scene, tmp_path, capsys) -> None:
    code = main(
        ["--checkpoint", str(tmp_path / "none.pt"), "--data", str(scene[1]), "--objects", str(scene[0])]
    )
    assert code == 1
    assert "not found" in capsys.readouterr().err

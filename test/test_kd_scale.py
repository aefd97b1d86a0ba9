"""scripts/kd_scale.py: the distillation terms of a student against a teacher, and the
weights that give each term a chosen share of L_gt."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from data_fixtures import render_box_scene

from hrpose_ros.network.model import create_model
from hrpose_ros.training.config import DataConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("kd_scale", ROOT / "scripts" / "kd_scale.py")
kd_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kd_scale)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> TrainConfig:
    objects, split = render_box_scene(tmp_path_factory.mktemp("scene"), 4)
    data = DataConfig(
        train_dir=str(split), objects=str(objects), input_width=128, input_height=96, num_workers=0
    )
    return TrainConfig(role="student", model="hrpose_tiny", batch_size=2, device="cpu", amp=False, data=data)


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("hrpose_tiny", 1).eval()


def test_a_student_equal_to_its_teacher_has_no_distillation_terms(cfg) -> None:
    teacher = _net(0)
    terms = kd_scale.measure_terms(cfg, teacher, _net(0), batches=2)
    assert terms["gt"] > 0 and terms["out"] == 0.0 and terms["fs"] == pytest.approx(0.0, abs=1e-10)


def test_weights_give_each_term_the_share_asked_for(cfg) -> None:
    terms = kd_scale.measure_terms(cfg, _net(0), _net(1), batches=2)
    assert terms["out"] > 0 and terms["fs"] > 0
    weights = kd_scale.weights_for_share(terms, 0.25)
    assert weights["alpha"] * terms["out"] == pytest.approx(0.25 * terms["gt"])
    assert weights["beta"] * terms["fs"] == pytest.approx(0.25 * terms["gt"])
    offsets = replace(cfg, data=replace(cfg.data, vector_field="corner_offsets"))
    assert kd_scale.measure_terms(offsets, _net(0), _net(1), batches=2)["gt"] != pytest.approx(terms["gt"])

"""Training configuration: paper defaults, YAML files, dotted overrides, clear errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hrpose_ros.data.augment import AugmentParams
from hrpose_ros.training.config import ConfigError, TrainConfig, config_to_dict, load_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def test_defaults_are_the_papers_schedule() -> None:
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.optim.lr, cfg.optim.lr_step_epochs, cfg.optim.lr_gamma) == (
        120,
        32,
        1e-4,
        20,
        0.5,
    )
    assert (cfg.distill.alpha, cfg.distill.beta) == (0.5, 5e-5)


@pytest.mark.parametrize(
    ("name", "role", "model"),
    [
        ("train_teacher.yaml", "teacher", "hrpose_teacher"),
        ("train_student.yaml", "student", "hrpose_student"),
    ],
)
def test_shipped_yaml_files_load_and_keep_the_defaults(name: str, role: str, model: str) -> None:
    cfg = load_config(CONFIG_DIR / name)
    assert (cfg.role, cfg.model) == (role, model)
    defaults = config_to_dict(TrainConfig())
    loaded = config_to_dict(cfg)
    for section in ("optim", "distill"):
        assert loaded[section] == defaults[section]
    assert loaded["epochs"] == defaults["epochs"] and loaded["batch_size"] == defaults["batch_size"]


def test_overrides_apply_after_the_file_and_parse_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\noptim:\n  lr: 3.0e-4\n")
    cfg = load_config(path, ["optim.lr=1e-3", "data.augment=false", "batch_size=4"])
    assert cfg.epochs == 7 and cfg.optim.lr == 1e-3 and cfg.data.augment is False and cfg.batch_size == 4


def test_augment_section_is_the_datasets_ranges(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("augment:\n  scale_range: [0.7, 1.4]\n")
    cfg = load_config(path, ["augment.brightness=0.6"])
    assert cfg.augment == replace(AugmentParams(), scale_range=(0.7, 1.4), brightness=0.6)
    assert TrainConfig().augment == AugmentParams()
    assert config_to_dict(cfg)["augment"]["brightness"] == 0.6


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "optim.lrr"),
        ("epochs=many", "epochs must be int"),
        ("data.augment=3", "data.augment must be true or false"),
        ("role=pupil", "role must be one of"),
        ("data.input_width=100", "multiples of 32"),
        ("epochs", "key=value"),
        ("optim.name=lamb", "optim.name must be one of"),
        ("optim.momentum=1", "optim.momentum must lie in"),
        ("batch_norm=group", "batch_norm must be one of"),
        ("dist_timeout_min=0", "dist_timeout_min must be > 0"),
        ("data.vector_field=sideways", "data.vector_field must be one of"),
        ("data.offset_scale=0", "data.offset_scale must be > 0"),
        ("loss.offset_weight=-1", "loss.offset_weight must be >= 0"),
        ("loss.size_weight=-0.5", "loss.size_weight must be >= 0"),
        ("optim.schedule=linear", "optim.schedule must be one of"),
        ("optim.min_lr_fraction=2", "min_lr_fraction"),
        ("data.crop_width=96", "crop_width/height must both be"),
        ("data.crop_height=100", "crop_width/height must both be"),
        ("augment.brightness=-0.1", "augment: brightness must be >= 0"),
        ("augment.scale_range=[1.2, 0.9]", "augment: scale_range must satisfy"),
        ("augment.scale_range=[0.9]", "augment.scale_range must have 2 values"),
        ("augment.scale_range=[small, 1]", "augment.scale_range must be a number"),
        ("augment.blur_prob=2", "augment: blur_prob must lie in"),
    ],
)
def test_bad_values_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")

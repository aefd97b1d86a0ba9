"""Training: overfitting recovers poses, exact resume, NaN stop, CLI runs for teacher and student.

The data are 8 images rendered by the project's own generator (one cuboid object, 128x96),
made once per module in a temporary folder.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from data_fixtures import render_box_scene

from hrpose_ros.data.augment import AugmentParams
from hrpose_ros.data.bop import read_dataset
from hrpose_ros.evaluation.runner import evaluate
from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.network.checkpoint import load_checkpoint, model_from_checkpoint
from hrpose_ros.training.checkpoint import save_checkpoint
from hrpose_ros.training.config import ConfigError, DataConfig, OptimConfig, TrainConfig, load_config
from hrpose_ros.training.evaluate import estimator_for_checkpoint
from hrpose_ros.training.train import (
    NonFiniteLossError,
    Trainer,
    TrainingError,
    _overrides,
    _parse_args,
    build_datasets,
    load_teacher,
    main,
)

torch.set_num_threads(1)

WIDTH, HEIGHT = 128, 96


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(catalogue YAML, BOP split folder) of 8 rendered images of one 10x7x5 cm box."""
    return render_box_scene(tmp_path_factory.mktemp("scene"), 8, WIDTH, HEIGHT)


def _config(scene: tuple[Path, Path], out: Path, **overrides) -> TrainConfig:
    objects, split = scene
    data = DataConfig(
        train_dir=str(split),
        objects=str(objects),
        input_width=WIDTH,
        input_height=HEIGHT,
        augment=False,
        num_workers=0,
    )
    cfg = TrainConfig(
        role="teacher",
        model="hrpose_tiny",
        out_dir=str(out),
        epochs=1,
        batch_size=8,
        seed=0,
        device="cpu",
        amp=False,
        log_every=0,
        overlay_every=0,
        data=data,
        optim=OptimConfig(lr=2e-3),
    )
    return replace(cfg, **overrides)


def _trainer(cfg: TrainConfig, teacher=None) -> Trainer:
    catalogue = load_catalogue(cfg.data.objects)
    train_set, val_set, collate = build_datasets(cfg, catalogue)
    return Trainer(cfg, train_set, catalogue, collate_fn=collate, val_set=val_set, teacher=teacher)


@pytest.mark.slow
@pytest.mark.parametrize("vector_field", ["to_centroid", "corner_offsets"])
def test_tiny_model_overfits_until_pnp_recovers_the_poses(scene, tmp_path, vector_field: str) -> None:
    """Train on 8 images, then run the runtime Estimator + metrics: ADD passes on >= 7 of 8,
    with either kind of vector field (the checkpoint tells the decoder which)."""
    cfg = _config(scene, tmp_path, epochs=10_000, optim=OptimConfig(lr=5e-3))
    trainer = _trainer(replace(cfg, data=replace(cfg.data, vector_field=vector_field)))
    catalogue = trainer.catalogue
    images = read_dataset(scene[1])
    batch = next(iter(trainer.train_loader))
    assert batch["image"].shape == (8, 3, HEIGHT, WIDTH)
    passed, losses = 0, []
    for step in range(1, 801):  # about 350 steps (2 min on one core) are needed
        losses.append(trainer.train_step(batch)["total"])
        if step >= 200 and step % 50 == 0:
            trainer.save()
            estimator, _ = estimator_for_checkpoint(trainer.checkpoint_path, catalogue, device="cpu")
            assert estimator.bundle.vector_field == vector_field
            result = evaluate(estimator, images, catalogue, progress=False)
            passed = sum(r.add_rel < 0.1 for r in result.instances)
            if passed >= 7:
                break
    assert losses[-1] < 0.2 * losses[0]
    assert passed >= 7, f"ADD passed on {passed} of 8 after {step} steps"


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_training_set_augments_with_the_configs_ranges_and_only_when_on(scene, tmp_path) -> None:
    ranges = replace(AugmentParams(), brightness=0.6, scale_range=(0.7, 1.4))
    cfg = _config(scene, tmp_path, augment=ranges)
    catalogue = load_catalogue(cfg.data.objects)
    on, _, _ = build_datasets(replace(cfg, data=replace(cfg.data, augment=True)), catalogue)
    off, _, _ = build_datasets(cfg, catalogue)
    assert on.augment == ranges
    assert off.augment is None


def test_channels_last_trains_the_same_network(scene, tmp_path) -> None:
    """The memory order is a speed setting: the same loss, and after one step the same
    weights to rounding (SGD, whose step is the gradient itself; Adam turns rounding noise
    in near-zero gradients into lr-sized steps, see test_distributed.py)."""
    runs, losses = {}, {}
    sgd = OptimConfig(name="sgd", lr=0.05)
    for channels_last in (False, True):
        cfg = _config(scene, tmp_path / str(channels_last), channels_last=channels_last, optim=sgd)
        trainer = _trainer(cfg)
        conv = trainer.model.head[0][0].weight  # a 3x3 convolution
        assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
        batch = next(iter(trainer.train_loader))
        losses[channels_last] = trainer.train_step(batch)["total"]
        runs[channels_last] = _weights(trainer)
    floats = [k for k, v in runs[False].items() if v.is_floating_point()]
    moved = max((runs[True][k] - runs[False][k]).abs().max().item() for k in floats)
    change = max(
        (runs[False][k] - w).abs().max().item()
        for k, w in _weights(_trainer(_config(scene, tmp_path / "init", optim=sgd))).items()
        if w.is_floating_point()
    )
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
    assert moved < 1e-4 * change, (moved, change)


@pytest.mark.parametrize(
    ("stop_after", "workers"),
    [(3, 1), (4, 1), (5, 0)],
    ids=["mid-epoch", "epoch-boundary", "second-epoch-no-workers"],
)
def test_resume_after_interruption_gives_identical_weights(
    scene, tmp_path, stop_after: int, workers: int
) -> None:
    """2 epochs x 4 batches uninterrupted == stopped after `stop_after` steps, then resumed."""
    common = {
        "epochs": 2,
        "batch_size": 2,
        "optim": OptimConfig(lr=1e-3),
        "data": replace(_config(scene, tmp_path).data, augment=True, num_workers=workers),
    }
    full = _trainer(_config(scene, tmp_path / "full", **common))
    full.fit()
    assert full.global_step == 8

    first = _trainer(_config(scene, tmp_path / "cut", max_steps=stop_after, **common))
    first.fit()
    assert first.global_step == stop_after
    del first
    second = _trainer(_config(scene, tmp_path / "cut", **common))
    second.resume(tmp_path / "cut" / "last.pt")
    second.fit()
    assert second.global_step == 8
    a, b = _weights(full), _weights(second)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert (
        full.optimizer.state_dict()["state"][0]["step"] == second.optimizer.state_dict()["state"][0]["step"]
    )


def test_resume_without_the_restored_rng_state_differs(scene, tmp_path) -> None:
    """Control for the test above: the same resume with the loader's RNG state replaced diverges."""
    common = {
        "epochs": 2,
        "batch_size": 2,
        "optim": OptimConfig(lr=1e-3),
        "data": replace(_config(scene, tmp_path).data, augment=True, num_workers=1),
    }
    full = _trainer(_config(scene, tmp_path / "full", **common))
    full.fit()
    _trainer(_config(scene, tmp_path / "cut", max_steps=4, **common)).fit()
    path = tmp_path / "cut" / "last.pt"
    state = load_checkpoint(path)
    state["rng"]["loader"] = torch.Generator().manual_seed(12345).get_state()
    save_checkpoint(path, state)
    second = _trainer(_config(scene, tmp_path / "cut", **common))
    second.resume(path)
    second.fit()
    a, b = _weights(full), _weights(second)
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_time_budget_stops_mid_epoch_with_a_checkpoint_that_resumes(scene, tmp_path, caplog) -> None:
    cfg = _config(scene, tmp_path, epochs=3, batch_size=2, max_minutes=1e-6)  # spent at once
    trainer = _trainer(cfg)
    trainer.fit()
    assert trainer.epoch == 0 and trainer.global_step < len(trainer.train_loader)
    assert "time budget of 1e-06 min spent" in caplog.text
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["global_step"] == state["batches_done"] == trainer.global_step
    resumed = _trainer(replace(cfg, max_minutes=0.0))
    resumed.resume(tmp_path / "last.pt")
    resumed.fit()
    assert resumed.epoch == 3 and resumed.global_step == 3 * len(resumed.train_loader)
    with pytest.raises(ConfigError, match="max_minutes"):
        replace(cfg, max_minutes=-1.0)


def test_checkpoint_is_written_atomically_with_everything_resume_needs(scene, tmp_path) -> None:
    trainer = _trainer(_config(scene, tmp_path))
    trainer.fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert {
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "epoch",
        "batches_done",
        "global_step",
        "rng",
        "config",
        "model_info",
    } <= set(state)
    assert {"python", "numpy", "torch", "loader"} <= set(state["rng"])
    assert state["epoch"] == 1 and state["batches_done"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    model, info = model_from_checkpoint(tmp_path / "last.pt")
    assert info["classes"] == ["box"] and info["input_size"] == [WIDTH, HEIGHT]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in trainer.model.state_dict().items())


def test_nan_loss_stops_with_a_clear_error(scene, tmp_path) -> None:
    trainer = _trainer(_config(scene, tmp_path))
    batch = next(iter(trainer.train_loader))
    batch["image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, step 1"):
        trainer.train_step(batch)


def _tiny_cli_args(scene: tuple[Path, Path], epochs: int, *sets: str) -> list[str]:
    """hrpose-train arguments for the tiny model on the test scene at 128x96, CPU, batch 4."""
    objects, split = scene
    args = ["--model", "hrpose_tiny", "--data", str(split), "--objects", str(objects), "--device", "cpu",
            "--batch-size", "4", "--epochs", str(epochs)]  # fmt: skip
    for item in ("data.input_width=128", "data.input_height=96", "data.num_workers=0", *sets):
        args += ["--set", item]
    return args


def test_cli_exits_2_with_a_message_when_the_loss_diverges(scene, tmp_path, capsys) -> None:
    code = main(
        ["teacher", "--out", str(tmp_path), *_tiny_cli_args(scene, 3, "optim.lr=1e30", "overlay_every=0")]
    )
    assert code == 2
    assert "loss is" in capsys.readouterr().err


def test_cli_interrupted_saves_and_exits_130_without_traceback(scene, tmp_path, capsys, monkeypatch) -> None:
    steps = []

    def interrupted_step(self, batch):
        steps.append(1)
        if len(steps) == 2:  # Ctrl-C during the second step
            raise KeyboardInterrupt
        return original(self, batch)

    original = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    code = main(["teacher", "--out", str(tmp_path), *_tiny_cli_args(scene, 2, "overlay_every=0")])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted; continue with --resume" in err and "Traceback" not in err
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
    assert (state["epoch"], state["batches_done"]) == (0, 1)


def test_cli_trains_teacher_then_student_with_distillation(scene, tmp_path, capsys) -> None:
    common = _tiny_cli_args(scene, 1, "log_every=1")
    assert main(["teacher", "--out", str(tmp_path / "t"), *common]) == 0
    teacher_ckpt = tmp_path / "t" / "last.pt"
    assert teacher_ckpt.is_file()
    assert list((tmp_path / "t" / "tb").glob("events.out.tfevents.*"))
    assert main(["student", "--teacher", str(teacher_ckpt), "--out", str(tmp_path / "s"), *common]) == 0
    history = load_checkpoint(tmp_path / "s" / "last.pt")["history"]
    assert history[-1]["train/out"] > 0 and history[-1]["train/fs"] > 0
    assert "images/s" in capsys.readouterr().out


def test_student_without_teacher_is_refused(scene, tmp_path) -> None:
    cfg = _config(scene, tmp_path, role="student")
    with pytest.raises(TrainingError, match="teacher"):
        _trainer(cfg)
    alone = replace(cfg, distill=replace(cfg.distill, alpha=0.0, beta=0.0))
    assert _trainer(alone).teacher is None  # the "no KD" ablation arm


def test_teacher_is_frozen_and_checked_against_the_class_count(scene, tmp_path) -> None:
    trainer = _trainer(_config(scene, tmp_path))
    trainer.save()
    teacher = load_teacher(trainer.checkpoint_path, 1, torch.device("cpu"))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(TrainingError, match="1 classes"):
        load_teacher(trainer.checkpoint_path, 3, torch.device("cpu"))


def test_keep_epochs_keeps_each_epoch_end_beside_last(scene, tmp_path) -> None:
    trainer = _trainer(_config(scene, tmp_path, epochs=2, batch_size=4, keep_epochs=True))
    trainer.fit()
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == ["epoch_001.pt", "epoch_002.pt"]
    first, last = load_checkpoint(tmp_path / "epoch_001.pt"), load_checkpoint(tmp_path / "last.pt")
    assert first["epoch"] == 1 and first["batches_done"] == 0
    assert load_checkpoint(tmp_path / "epoch_002.pt")["global_step"] == last["global_step"]
    assert not all(torch.equal(v, last["model"][k]) for k, v in first["model"].items())
    _trainer(_config(scene, tmp_path / "plain", epochs=1)).fit()
    assert not list((tmp_path / "plain").glob("epoch_*.pt"))


def test_resume_refuses_another_model(scene, tmp_path) -> None:
    trainer = _trainer(_config(scene, tmp_path))
    trainer.save()
    other = _trainer(_config(scene, tmp_path / "o", model="hrpose_student"))
    with pytest.raises(TrainingError, match="cannot resume"):
        other.resume(trainer.checkpoint_path)


def test_init_checkpoint_starts_from_the_weights_with_a_fresh_schedule(scene, tmp_path) -> None:
    source = _trainer(_config(scene, tmp_path / "a", max_steps=3))
    source.fit()
    path = source.checkpoint_path
    started = _trainer(_config(scene, tmp_path / "b", init_checkpoint=str(path)))
    a, b = _weights(source), _weights(started)
    assert all(torch.equal(a[k], b[k]) for k in a)  # every tensor: backbone, head, BN statistics
    assert started.global_step == 0 and started.epoch == 0 and not started.optimizer.state
    fresh = _weights(_trainer(_config(scene, tmp_path / "c")))
    assert not all(torch.equal(a[k], fresh[k]) for k in a)  # control: without it, other weights
    with pytest.raises(TrainingError, match="vector_field 'to_centroid'"):
        _trainer(
            _config(
                scene,
                tmp_path / "d",
                init_checkpoint=str(path),
                data=replace(_config(scene, tmp_path).data, vector_field="corner_offsets"),
            )
        )
    with pytest.raises(TrainingError, match="variant 'hrpose_tiny'"):
        _trainer(_config(scene, tmp_path / "e", model="hrpose_student", init_checkpoint=str(path)))
    assert _parse_args(["student", "--init", str(path)]).init == str(path)
    assert f"init_checkpoint={path}" in _overrides(_parse_args(["student", "--init", str(path)]))


def test_init_backbone_takes_the_backbone_only_from_a_variant_with_the_same_one(scene, tmp_path) -> None:
    source = _trainer(_config(scene, tmp_path / "a", model="hrpose_lite0", seed=1))  # other random weights
    source.save()
    path = source.checkpoint_path
    wide = _trainer(_config(scene, tmp_path / "b", model="hrpose_lite0_wide", init_backbone=str(path)))
    a, b = _weights(source), _weights(wide)
    backbone = [k for k in a if k.startswith("backbone.")]
    assert backbone and all(torch.equal(a[k], b[k]) for k in backbone)
    assert b["head.0.0.weight"].shape[0] == 2 * a["head.0.0.weight"].shape[0]  # 128 wide, fresh
    fresh = _weights(_trainer(_config(scene, tmp_path / "c", model="hrpose_lite0_wide")))
    assert not all(torch.equal(fresh[k], b[k]) for k in backbone)  # control: without it, other weights
    with pytest.raises(TrainingError, match="needs backbone 'hrnet_w18_small'"):
        _trainer(_config(scene, tmp_path / "d", init_backbone=str(path)))  # hrpose_tiny
    with pytest.raises(ConfigError, match="exclude each other"):
        _config(scene, tmp_path / "e", init_backbone=str(path), init_checkpoint=str(path))
    assert f"init_backbone={path}" in _overrides(_parse_args(["student", "--init-backbone", str(path)]))


def test_learning_rate_halves_every_step_epochs(scene, tmp_path) -> None:
    cfg = _config(scene, tmp_path, epochs=5, limit_batches=1, optim=OptimConfig(lr=1e-3, lr_step_epochs=2))
    history = _trainer(cfg).fit()
    assert [h["lr"] for h in history] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


def test_cosine_schedule_warms_up_then_decays_per_step_to_the_floor(scene, tmp_path) -> None:
    """Per optimiser step: linear warm-up to lr, then a cosine to lr x min_lr_fraction at the
    last step (3 epochs x 2 batches of 4 = 6); and AdamW when asked for."""
    optim = OptimConfig(name="adamw", lr=1e-3, schedule="cosine", warmup_steps=2, min_lr_fraction=0.1)
    trainer = _trainer(_config(scene, tmp_path, epochs=3, batch_size=4, optim=optim))
    assert len(trainer.train_loader) == 2
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    seen = []
    for _ in range(6):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.scheduler.step()
    seen.append(trainer.optimizer.param_groups[0]["lr"])

    def cosine(progress: float) -> float:
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    expected = [0.5, 1.0, cosine(0), cosine(0.25), cosine(0.5), cosine(0.75), 0.1]
    assert seen == pytest.approx([1e-3 * f for f in expected])


def test_cosine_schedule_steps_in_training_not_per_epoch(scene, tmp_path) -> None:
    optim = OptimConfig(lr=1e-3, schedule="cosine", min_lr_fraction=0.0)
    history = _trainer(_config(scene, tmp_path, epochs=2, batch_size=4, optim=optim)).fit()
    assert history[0]["lr"] == pytest.approx(0.5e-3)  # after 2 of 4 steps: half way down
    assert history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # after 4 of 4 steps: at the floor


@pytest.mark.parametrize(
    ("config_text", "cli_model", "expected"),
    [
        ("", None, "hrpose_student"),  # the paper's student by default
        ("model: hrpose_lite0\n", None, "hrpose_lite0"),  # a config file's model is kept
        ("model: hrpose_lite0\n", "hrpose_tiny", "hrpose_tiny"),  # --model wins
    ],
)
def test_student_model_comes_from_cli_then_config_then_default(tmp_path, config_text, cli_model, expected):
    config = tmp_path / "student.yaml"
    config.write_text(config_text or "epochs: 1\n")
    argv = ["student", "--config", str(config)] + (["--model", cli_model] if cli_model else [])
    args = _parse_args(argv)
    assert load_config(args.config, _overrides(args)).model == expected

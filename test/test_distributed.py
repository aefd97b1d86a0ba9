"""hrpose-train under torchrun: 2 CPU ranks (gloo) against one process, resume, failures.

Every multi-rank run here is a real ``torchrun --nproc_per_node 2`` of ``test/ddp_worker.py``,
which is ``hrpose-train``'s ``main`` plus an audit hook that records each rank's file
writes. The data are 8 rendered 128x96 images; the model is ``hrpose_tiny``; each run is 2
epochs of 2 steps (2 images per rank, a global batch of 4).

Why the runs use ``batch_norm=frozen`` and ``optim.name=sgd``:

- BatchNorm in training mode normalises by the statistics of the batch it sees, and a rank
  sees half of the global batch, so two ranks and one process would compute different
  functions. torch's SyncBatchNorm, which would fix that, runs on CUDA only; frozen
  statistics (eval-mode BatchNorm, scale and shift still trained) make every image's output
  independent of its batch, so the comparison tests what DDP does: average the gradients.
- Adam divides each gradient element by its own running magnitude. Where the per-image
  terms of a gradient element nearly cancel, float32 rounding (which differs between one
  batch of 4 and two batches of 2) decides the sign of a whole lr-sized step; measured
  here: weights 2.3e-3 apart after 4 Adam steps at lr 1e-3, when the largest move was
  4e-3. SGD's step is linear in the gradient, so its weights show the gradient agreement.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from data_fixtures import REPO, render_box_scene
from torch.utils.data import DistributedSampler

from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.network.checkpoint import load_checkpoint
from hrpose_ros.training.config import load_config
from hrpose_ros.training.distributed import DistContext, DistributedError, init_distributed
from hrpose_ros.training.train import (
    Trainer,
    TrainingError,
    _overrides,
    _parse_args,
    build_datasets,
    make_loader,
)

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no torch.distributed with the gloo backend",
)

torch.set_num_threads(1)

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
LAUNCH_TIMEOUT_S = 600
"""A bound for one torchrun job (about 15 s on 2 busy cores); the failure tests rely on it
being far below what a hang would take (the fault sleeps an hour, the default collective
timeout is 30 minutes)."""
WORLD, PER_RANK = 2, 2
LR = 3e-3
TOLERANCE = 1e-3
"""Largest weight difference, as a fraction of the largest weight change of the run.

Why not zero: the same sums are added in another order (convolutions over a batch of 4
against two batches of 2, then gloo's average), so float32 results differ in their last
bits, and 4 steps carry that forward. Measured: 2e-6 of the largest change (0.16) on an
AVX-512 machine, 1.25e-4 on an AVX2 AMD EPYC (other oneDNN kernels). A wrong gradient
average or batch split moves the weights by a large share of the change itself."""


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return render_box_scene(tmp_path_factory.mktemp("scene"), 8)


def _settings(*extra: str) -> list[str]:
    """The ``--set`` overrides every run here shares (see the module docstring)."""
    values = ["data.input_width=128", "data.input_height=96", "batch_norm=frozen", "optim.name=sgd",
              f"optim.lr={LR}", "amp=false", "log_every=1", "seed=5", *extra]  # fmt: skip
    return [arg for value in values for arg in ("--set", value)]


def _train_args(scene: tuple[Path, Path], out: Path, batch_size: int, *extra: str) -> list[str]:
    objects, split = scene
    return ["teacher", "--model", "hrpose_tiny", "--data", str(split), "--objects", str(objects),
            "--device", "cpu", "--epochs", "2", "--batch-size", str(batch_size), "--out", str(out),
            *_settings(*extra)]  # fmt: skip


def _trainer(args: list[str], dist_context: DistContext | None = None) -> Trainer:
    """The Trainer ``hrpose-train args`` would build, in this process."""
    cfg = load_config(None, _overrides(_parse_args(args)))
    catalogue = load_catalogue(cfg.data.objects)
    train_set, _, collate = build_datasets(cfg, catalogue)
    return Trainer(cfg, train_set, catalogue, collate_fn=collate, dist=dist_context)


def _torchrun(args: list[str], audit: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run ``hrpose-train args`` as 2 ranks, for at most LAUNCH_TIMEOUT_S."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    environ.update(OMP_NUM_THREADS="1", **env)
    if audit is not None:
        audit.mkdir(parents=True)
        environ.update(HRPOSE_TEST_WATCH=str(audit.parent), HRPOSE_TEST_AUDIT=str(audit))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
               str(WORKER), *args]  # fmt: skip
    return subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, check=False
    )


def _run_ok(args: list[str], audit: Path) -> subprocess.CompletedProcess:
    done = _torchrun(args, audit)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


@pytest.fixture(scope="module")
def ddp_run(scene, tmp_path_factory) -> Path:
    """2 ranks x 2 epochs x 2 steps without augmentation; returns the run's folder."""
    root = tmp_path_factory.mktemp("ddp")
    _run_ok(
        _train_args(scene, root / "out", PER_RANK, "data.augment=false", "data.num_workers=0"), root / "audit"
    )
    return root


@pytest.fixture(scope="module")
def resume_runs(scene, tmp_path_factory) -> Path:
    """With augmentation and a loader worker per rank: uninterrupted, then stopped after 3
    steps (mid-epoch 2) and resumed."""
    root = tmp_path_factory.mktemp("resume")
    common = ("data.augment=true", "data.num_workers=1")
    _run_ok(_train_args(scene, root / "full", PER_RANK, *common), root / "audit_full")
    _run_ok([*_train_args(scene, root / "cut", PER_RANK, *common), "--max-steps", "3"], root / "audit_cut")
    (root / "cut_after_3_steps.pt").write_bytes((root / "cut" / "last.pt").read_bytes())
    _run_ok([*_train_args(scene, root / "cut", PER_RANK, *common), "--resume"], root / "audit_resumed")
    return root


def _one_process_with_the_global_batch(scene: tuple[Path, Path], out: Path) -> Trainer:
    """The same training in this process with batch 4, over the ranks' sample order.

    Each rank's DistributedSampler takes positions r, r + 2, r + 4, ... of one permutation
    of the epoch (seeded with seed + epoch), so global batch k is the block [4k, 4k + 4) of
    that permutation: exactly the batches of a DistributedSampler for 1 replica.
    """
    trainer = _trainer(_train_args(scene, out, PER_RANK * WORLD, "data.augment=false", "data.num_workers=0"))
    train_set, cfg = trainer.train_loader.dataset, trainer.cfg
    sampler = DistributedSampler(
        train_set, num_replicas=1, rank=0, shuffle=True, seed=cfg.seed, drop_last=True
    )
    trainer.train_loader = make_loader(
        train_set, cfg, trainer.generator, trainer.train_loader.collate_fn, sampler=sampler
    )
    return trainer


def _float_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.double() for k, v in state.items() if v.is_floating_point()}


@pytest.mark.slow
def test_two_ranks_give_the_weights_of_one_process_with_the_global_batch(scene, ddp_run, tmp_path) -> None:
    """Weights after 4 steps of 2 ranks x 2 images == one process x 4 images, to TOLERANCE."""
    single = _one_process_with_the_global_batch(scene, tmp_path)
    initial = _float_tensors(single.model.state_dict())
    single.fit()
    expected = _float_tensors(single.model.state_dict())
    state = load_checkpoint(ddp_run / "out" / "last.pt")
    got = _float_tensors(state["model"])
    assert got.keys() == expected.keys()
    assert (state["global_step"], state["world_size"], state["global_batch"]) == (4, WORLD, 4)
    moved = max((expected[k] - initial[k]).abs().max().item() for k in expected)
    apart = {k: (got[k] - expected[k]).abs().max().item() for k in expected}
    worst = max(apart, key=apart.get)
    assert moved > 0.05, f"the run barely trained (largest change {moved:.3g}): the comparison would be empty"
    assert apart[worst] <= TOLERANCE * moved, f"{worst}: {apart[worst]:.3g} apart, largest change {moved:.3g}"
    for k, v in state["model"].items():  # integer buffers (num_batches_tracked) exactly
        if not v.is_floating_point():
            assert torch.equal(v, single.model.state_dict()[k]), k
    logged = [h["train/total"] for h in state["history"]]  # the mean over both ranks
    # the losses follow the weights' last-bit drift: 8.4e-4 apart on the AVX2 machine above
    assert logged == pytest.approx([h["train/total"] for h in single.history], rel=2e-3)


def _writes(audit: Path, rank: int) -> list[str]:
    return [entry["path"] for entry in json.loads((audit / f"rank{rank}.json").read_text())]


@pytest.mark.slow
def test_only_rank_0_writes_the_checkpoint_and_tensorboard(ddp_run, resume_runs) -> None:
    out = ddp_run / "out"
    events = list((out / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1, events  # one writer: scalars and overlays
    assert {p for p in out.rglob("*") if p.is_file()} == {out / "last.pt", events[0]}
    rank0 = _writes(ddp_run / "audit", 0)
    assert any(Path(p).name.startswith(".last.pt.") for p in rank0), rank0  # the atomic write
    assert any(Path(p) == events[0] for p in rank0), rank0
    for audit in [ddp_run / "audit", *(resume_runs / f"audit_{run}" for run in ("full", "cut", "resumed"))]:
        assert _writes(audit, 1) == [], f"rank 1 wrote files ({audit.name})"


@pytest.mark.slow
def test_a_resumed_two_rank_run_continues_identically(resume_runs) -> None:
    """Stopped after 3 steps (mid-epoch), resumed with --resume: bit-identical weights and
    optimiser state, with augmentation and loader workers (each rank's RNG state saved)."""
    full = load_checkpoint(resume_runs / "full" / "last.pt")
    resumed = load_checkpoint(resume_runs / "cut" / "last.pt")
    assert resumed["global_step"] == full["global_step"] == 4
    assert len(full["rng_ranks"]) == WORLD
    assert full["model"].keys() == resumed["model"].keys()
    differ = [k for k in full["model"] if not torch.equal(full["model"][k], resumed["model"][k])]
    assert not differ, differ[:5]
    momentum = [s["momentum_buffer"] for s in full["optimizer"]["state"].values()]
    assert all(
        torch.equal(a, s["momentum_buffer"])
        for a, s in zip(momentum, resumed["optimizer"]["state"].values(), strict=True)
    )
    # epoch 1 was trained before the cut; epoch 2's mean counts only the batches after it
    assert full["history"][0]["train/total"] == resumed["history"][0]["train/total"]


@pytest.mark.slow
def test_resuming_at_another_world_size_keeps_the_place_and_says_what_changes(
    scene, resume_runs, tmp_path, caplog
) -> None:
    """The 2-rank checkpoint after 3 steps of 4 images resumed by one process with batch 2:
    epoch 2 continues after its 4 trained samples (batch 2 of 4), step 3 becomes 6."""
    checkpoint = resume_runs / "cut_after_3_steps.pt"
    state = load_checkpoint(checkpoint)
    state_at_cut = (state["epoch"], state["batches_done"], state["global_step"], state["world_size"])
    trainer = _trainer(_train_args(scene, tmp_path, PER_RANK, "data.augment=true", "data.num_workers=0"))
    with caplog.at_level("WARNING"):
        trainer.resume(checkpoint)
    assert "world size 2 (global batch 4) at world size 1 (global batch 2)" in caplog.text
    assert "learning rate is not rescaled" in caplog.text
    assert "one process orders an epoch otherwise than torchrun ranks do" in caplog.text
    assert state_at_cut == (1, 1, 3, WORLD)
    assert (trainer.epoch, trainer.batches_done, trainer.global_step) == (1, 2, 6)
    trainer.fit()
    assert (trainer.epoch, trainer.global_step) == (2, 8)
    assert load_checkpoint(tmp_path / "last.pt")["world_size"] == 1


def test_another_batch_size_keeps_the_place_of_the_cosine_schedule(scene, tmp_path, caplog) -> None:
    """One process, batch 4 for 1 step of 4 (cosine, no warm-up), resumed at batch 2: the
    step counter becomes 2 of 8 and the learning rate is the one at a quarter of the way."""
    cosine = ("optim.schedule=cosine", "optim.warmup_steps=0", "optim.min_lr_fraction=0")
    cosine = (*cosine, "data.num_workers=0")
    first = _trainer([*_train_args(scene, tmp_path, 4, *cosine), "--max-steps", "1"])
    first.fit()
    second = _trainer(_train_args(scene, tmp_path, 2, *cosine))
    with caplog.at_level("WARNING"):
        second.resume(tmp_path / "last.pt")
    assert "world size 1 (global batch 4) at world size 1 (global batch 2)" in caplog.text
    assert "the batches group other samples, so" in caplog.text
    assert (second.global_step, second.scheduler.last_epoch) == (2, 2)
    assert second.optimizer.param_groups[0]["lr"] == pytest.approx(LR * 0.5 * (1 + math.cos(math.pi / 4)))


@pytest.mark.slow
def test_a_failing_rank_ends_the_job_with_its_error(scene, tmp_path) -> None:
    """Rank 1 raises in its first step while rank 0 waits for it in a collective: torchrun
    stops rank 0 at once (rather than at the 30-minute collective timeout) and names rank
    1's error as the root cause."""
    args = _train_args(scene, tmp_path / "out", PER_RANK, "data.num_workers=0")
    done = _torchrun(args, HRPOSE_TEST_FAULT_RANK="1", HRPOSE_TEST_FAULT="raise")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "RuntimeError: injected fault on rank 1" in output
    root_cause = output.split("Root Cause (first observed failure)")[-1]
    assert "rank      : 1" in root_cause and "injected fault on rank 1" in root_cause, root_cause
    assert not (tmp_path / "out" / "last.pt").exists()


@pytest.mark.slow
def test_a_hanging_rank_ends_the_job_at_the_collective_timeout(scene, tmp_path) -> None:
    """Rank 1 stops answering (sleeps an hour in its first step): rank 0's collective times
    out after dist_timeout_min (6 s here), rank 0 fails with that error and torchrun ends
    the job, instead of both waiting for the hour."""
    args = _train_args(scene, tmp_path / "out", PER_RANK, "data.num_workers=0", "dist_timeout_min=0.1")
    done = _torchrun(args, HRPOSE_TEST_FAULT_RANK="1", HRPOSE_TEST_FAULT="hang")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    # gloo words its timeout in two ways: the wait itself, or (on a loaded machine, when the
    # pair's own deadline fires first) the closure of the connection to the silent rank
    timed_out = "Timed out waiting 6000ms" in output or "Application timeout caused pair closure" in output
    assert "hrpose-train: rank 0 of 2: failed:" in output and timed_out, output[-4000:]
    assert "rank      : 0" in output.split("Root Cause (first observed failure)")[-1]


def test_init_without_torchrun_is_a_single_process_and_bad_launches_are_named() -> None:
    alone = init_distributed(torch.device("cpu"), 1.0, environ={})
    assert (alone.distributed, alone.is_main, alone.world_size) == (False, True, 1)
    with pytest.raises(
        DistributedError, match="MASTER_ADDR, MASTER_PORT not set: start hrpose-train with torchrun"
    ):
        init_distributed(
            torch.device("cpu"), 1.0, environ={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
        )
    ranked = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "x", "MASTER_PORT": "1"}
    with pytest.raises(DistributedError, match="each rank uses cuda:LOCAL_RANK"):
        init_distributed(torch.device("cuda", 0), 1.0, environ=ranked)


def test_sync_batch_norm_on_cpu_ranks_is_refused_with_the_way_out(scene, tmp_path) -> None:
    assert "batch_norm=sync" in _overrides(_parse_args(["teacher", "--batch-norm", "sync"]))
    args = _train_args(scene, tmp_path, PER_RANK, "data.num_workers=0")
    two_ranks = DistContext(rank=0, world_size=2, device=torch.device("cpu"), backend="gloo")
    with pytest.raises(TrainingError, match="SyncBatchNorm runs on GPUs only; on CPU use batch_norm=frozen"):
        _trainer([*args, "--set", "batch_norm=sync"], two_ranks)  # the last --set wins
    alone = _trainer(args)  # batch_norm=frozen
    alone.ddp.train()
    norms = [m for m in alone.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and not any(m.training for m in norms)

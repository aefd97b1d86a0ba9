"""Throughput of the training data engine at 640x480: generator and DataLoader.

1. Generator, one core: one process, llvmpipe with one thread (LP_NUM_THREADS=1),
   rendering + compositing + domain randomisation + writing JPEG/PNG files, after the
   one-time setup (GL context, mesh upload). Reports images/s per core.
2. Generator, N worker processes through ``generate_dataset`` (start-up included).
3. DataLoader: ``BopPoseDataset`` with full augmentation and the geometry core's
   targets, batch 32, over the images generated in step 2; one process (per-core
   cost) and N workers.

Then it prints the arithmetic for a 16-core machine feeding a GPU step of 30 ms per
batch of 32. Uses the LM-O catalogue (config/objects.yaml) unless told otherwise.

    python scripts/bench_data.py [--gen-images 60] [--workers 2] [--loader-batches 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe: one thread, so the rate is per core

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

_LOG = logging.getLogger("bench_data")
REPO = Path(__file__).resolve().parents[1]


def _rates(n: int, wall: float, cpu: float) -> tuple[float, float]:
    return n / wall, n / cpu


def bench_generator_one_core(catalogue, config, out_split: Path, n: int) -> tuple[float, float]:
    """(wall, CPU-time) images/s of sample + write in this process (setup excluded).

    The CPU-time rate (images per CPU-second of this process, llvmpipe included) is the
    per-core rate on an idle core; the wall rate also pays for other users of the machine.
    """
    from hrpose_ros.data.synthetic import SceneGenerator, write_sample  # noqa: PLC0415

    gen = SceneGenerator(catalogue, config)
    _LOG.info("renderer: %s", gen.renderer.gl_renderer)
    write_sample(out_split, 0, gen.sample(np.random.default_rng([0, 0])), config)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        write_sample(out_split, i, gen.sample(np.random.default_rng([1, i])), config)
    return _rates(n, time.perf_counter() - wall, time.process_time() - cpu)


def bench_loader(
    root: Path, catalogue, workers: int, batches: int, *, batch_size: int, options: dict
) -> tuple[float, float, int]:
    """(wall images/s, CPU-time images/s of this process, bytes per sample) of the
    augmented DataLoader. The CPU rate is meaningful with 0 workers only."""
    import torch  # noqa: PLC0415

    from hrpose_ros.data.augment import AugmentParams  # noqa: PLC0415
    from hrpose_ros.training.dataset import BopPoseDataset, collate  # noqa: PLC0415

    torch.set_num_threads(1)
    ds = BopPoseDataset(root, catalogue, (640, 480), augment=AugmentParams(), **options)
    sample = ds[0]
    nbytes = sum(v.numel() * v.element_size() for v in sample.values())
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=batch_size * (batches + 1))
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        prefetch_factor=2 if workers else None,
    )
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not steady state
    wall, cpu = time.perf_counter(), time.process_time()
    count = sum(batch["image"].shape[0] for batch in it)
    return (*_rates(count, time.perf_counter() - wall, time.process_time() - cpu), nbytes)


def bench_twin(num_classes: int, batch_size: int) -> float:
    """Milliseconds of the torch twin of the targets for one batch (here on the CPU)."""
    import torch  # noqa: PLC0415

    from hrpose_ros.training.targets_torch import batch_targets  # noqa: PLC0415

    rng = np.random.default_rng(0)
    m = 3
    batch = {
        "keypoints_2d": torch.from_numpy(rng.uniform(0, 640, (batch_size, m, 9, 2))),
        "class_index": torch.from_numpy(rng.integers(0, num_classes, (batch_size, m))),
        "visible": torch.ones(batch_size, m, dtype=torch.bool),
    }
    batch_targets(batch, num_classes, (120, 160))
    start = time.perf_counter()
    batch_targets(batch, num_classes, (120, 160))
    return (time.perf_counter() - start) * 1000


def main(argv=None) -> int:
    """Run the benchmark and print the table and the 16-core arithmetic."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--catalogue", default=str(REPO / "config" / "objects.yaml"))
    p.add_argument("--gen-images", type=int, default=60, help="images per generator measurement")
    p.add_argument("--workers", type=int, default=2, help="generator / DataLoader worker processes")
    p.add_argument("--loader-batches", type=int, default=3, help="timed batches per DataLoader measurement")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--step-ms", type=float, default=30.0, help="GPU training step per batch, ms")
    p.add_argument("--cores", type=int, default=16, help="cores of the training machine")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    import torch  # noqa: PLC0415

    from hrpose_ros.data.synthetic import SynthConfig, generate_dataset  # noqa: PLC0415
    from hrpose_ros.geometry.objects import load_catalogue  # noqa: PLC0415

    catalogue = load_catalogue(args.catalogue)
    config = SynthConfig()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gen_wall, gen_cpu = bench_generator_one_core(
            catalogue, config, tmp / "one" / "train_synt", args.gen_images
        )
        start = time.perf_counter()
        split = generate_dataset(
            tmp / "par", catalogue, config, args.gen_images, seed=2, workers=args.workers, progress=False
        )
        gen_par = args.gen_images / (time.perf_counter() - start)
        variants = {
            "float32 targets": {"target_dtype": torch.float32},
            "float16 targets": {"target_dtype": torch.float16},
            "keypoints only": {"with_targets": False},
        }
        rows = {}
        for name, options in variants.items():
            one_wall, one_cpu, nbytes = bench_loader(
                split, catalogue, 0, args.loader_batches, batch_size=args.batch_size, options=options
            )
            par_wall, _, _ = bench_loader(
                split,
                catalogue,
                args.workers,
                args.loader_batches,
                batch_size=args.batch_size,
                options=options,
            )
            rows[name] = (one_wall, one_cpu, par_wall, nbytes)
        twin_ms = bench_twin(len(catalogue), args.batch_size)

    print(
        f"640x480, LM-O catalogue ({len(catalogue)} classes), {os.cpu_count()} cores here, "
        f"load average {load:.1f} at start"
    )
    print(f"{'measurement':56s} {'wall':>8s} {'per CPU-s':>10s}  images/s")
    print(f"{'generator, 1 process, llvmpipe 1 thread':56s} {gen_wall:8.1f} {gen_cpu:10.1f}")
    print(f"{f'generator, {args.workers} processes (start-up included)':56s} {gen_par:8.1f}")
    for name, (one_wall, one_cpu, par_wall, _) in rows.items():
        print(f"{f'DataLoader, augmented, {name}, 0 workers':56s} {one_wall:8.1f} {one_cpu:10.1f}")
        print(f"{f'DataLoader, augmented, {name}, {args.workers} workers':56s} {par_wall:8.1f}")
    print(f"targets_torch.batch_targets, batch {args.batch_size}, on this CPU (1 thread): {twin_ms:.0f} ms")

    need = args.batch_size / (args.step_ms / 1000.0)
    workers16 = args.cores - 2  # one core for the training loop, one for the system
    print(f"\nGPU demand: batch {args.batch_size} / {args.step_ms:.0f} ms = {need:.0f} images/s")
    for name, (_, one_cpu, _, nbytes) in rows.items():
        supply = workers16 * one_cpu
        verdict = "keeps up" if supply >= need else "starves the GPU"
        print(
            f"{args.cores}-core machine, {name}: {workers16} workers x {one_cpu:.1f} images/CPU-s = "
            f"{supply:.0f} images/s -> {verdict} ({supply / need:.2f}x); "
            f"{nbytes / 1e6:.1f} MB/sample = {need * nbytes / 1e9:.1f} GB/s at the demanded rate"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

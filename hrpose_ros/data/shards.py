"""Sharded data generation: N machines render disjoint parts of one dataset, merged after.

Image ``i`` of a dataset is drawn from ``default_rng([seed, i])`` alone, so any machine can
render any subset of the images and write the same files as one machine would. Shard
``I/N`` (0-based, like ``SLURM_PROCID``) renders a contiguous block of whole scenes: of the
``S = ceil(num_images / images_per_scene)`` scenes, scenes ``floor(I*S/N)`` up to
``floor((I+1)*S/N)``, the last one possibly short. Whole scenes mean that no two shards
write the same scene folder or scene JSON, so merging is copying scene folders; every shard
writes the same ``models/models_info.json``.

Each shard folder gets a manifest, ``shard.json``, written after its last image: which
shard it is, of which dataset (image count, seed, scene size, split, generator settings),
and its scenes. ``merge_shards`` checks that the shards are all N shards of one dataset,
each once and complete, then copies; the merged folder holds exactly the files of the
unsharded dataset (the manifests stay in the shard folders).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST",
    "ShardError",
    "merge_shards",
    "parse_shard",
    "shard_images",
    "shard_scenes",
    "write_manifest",
]

MANIFEST = "shard.json"
_MODELS_INFO = Path("models") / "models_info.json"


class ShardError(ValueError):
    """A bad ``--shard``, or shards that do not make one dataset (says which and why)."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ShardError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise ShardError(f"--shard {text}: need 0 <= I < N (shards are numbered from 0)")
    return index, count


def shard_scenes(num_images: int, images_per_scene: int, index: int, count: int) -> range:
    """The scene ids of shard ``index`` of ``count``."""
    scenes = math.ceil(num_images / images_per_scene)
    if count > scenes:
        raise ShardError(
            f"{count} shards, but {num_images} images of {images_per_scene} per scene make only {scenes} "
            f"scenes: use at most {scenes} shards, or a smaller --images-per-scene"
        )
    return range(index * scenes // count, (index + 1) * scenes // count)


def shard_images(num_images: int, images_per_scene: int, index: int, count: int) -> range:
    """The image indices of shard ``index`` of ``count`` (whole scenes)."""
    scenes = shard_scenes(num_images, images_per_scene, index, count)
    return range(scenes.start * images_per_scene, min(scenes.stop * images_per_scene, num_images))


def write_manifest(
    out_dir: str | Path, dataset: dict[str, Any], split: str, shard: tuple[int, int], scenes: range
) -> Path:
    """Write ``out_dir/shard.json``: ``shard`` (I, N) of ``dataset`` (plain JSON data that
    must be equal for every shard of it) with these scenes of ``split``."""
    path = Path(out_dir) / MANIFEST
    manifest = {"shard": list(shard), "dataset": dataset, "split": split, "scenes": list(scenes)}
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise ShardError(
            f"{folder} has no {MANIFEST}: not a shard folder, or its hrpose-synth --shard has not finished"
        )
    return json.loads(path.read_text())


def _check_one_dataset(folders: list[Path], manifests: list[dict[str, Any]]) -> None:
    first = manifests[0]
    for folder, manifest in zip(folders[1:], manifests[1:], strict=True):
        for key in ("dataset", "split"):
            if manifest[key] != first[key]:
                theirs, ours = manifest[key], first[key]
                if isinstance(ours, dict):
                    fields = sorted(k for k in {*ours, *theirs} if ours.get(k) != theirs.get(k))
                    ours, theirs = {k: ours.get(k) for k in fields}, {k: theirs.get(k) for k in fields}
                raise ShardError(
                    f"{folder} is a shard of another dataset than {folders[0]}: {theirs} != {ours}"
                )
    counts = {m["shard"][1] for m in manifests}
    if len(counts) > 1:
        raise ShardError(f"the shards are parts of different splits into {sorted(counts)} shards")
    count = counts.pop()
    given = [m["shard"][0] for m in manifests]
    problems = []
    missing = sorted(set(range(count)) - set(given))
    if missing:
        problems.append("missing " + ", ".join(f"{i}/{count}" for i in missing))
    twice = sorted({i for i in given if given.count(i) > 1})
    if twice:
        problems.append("given twice " + ", ".join(f"{i}/{count}" for i in twice))
    if problems:
        raise ShardError(f"merging needs each of the {count} shards once: {'; '.join(problems)}")


def merge_shards(out_dir: str | Path, shard_dirs: Sequence[str | Path], progress: bool = True) -> Path:
    """Copy the scenes of every shard of one dataset into ``out_dir``; returns its split folder.

    Refuses, naming the problem, shards of different datasets, a missing, repeated or
    unfinished shard, differing ``models_info.json`` files, and scene folders that
    already exist in ``out_dir``.
    """
    from tqdm import tqdm  # noqa: PLC0415

    if not shard_dirs:
        raise ShardError("nothing to merge: name the shard folders")
    out_dir, folders = Path(out_dir), [Path(d) for d in shard_dirs]
    if any(out_dir.resolve() == f.resolve() for f in folders):
        raise ShardError(f"merge into a new folder, not into the shard {out_dir}")
    manifests = [_read_manifest(f) for f in folders]
    _check_one_dataset(folders, manifests)
    models = {(f / _MODELS_INFO).read_bytes() for f in folders}
    if len(models) > 1:
        raise ShardError(f"the shards' {_MODELS_INFO} differ: they were made from different catalogues")
    target = out_dir / _MODELS_INFO
    if target.exists() and target.read_bytes() not in models:
        raise ShardError(f"{target} exists and differs from the shards'")
    split = manifests[0]["split"]
    jobs = [
        (folder / split / f"{scene:06d}", out_dir / split / f"{scene:06d}")
        for folder, manifest in zip(folders, manifests, strict=True)
        for scene in manifest["scenes"]
    ]
    for source, dest in jobs:
        if not source.is_dir():
            raise ShardError(f"{source} is missing: the shard is incomplete")
        if dest.exists():
            raise ShardError(f"{dest} exists already: merge into an empty folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(models.pop())
    for source, dest in tqdm(jobs, desc="merge", unit="scene", disable=not progress):
        shutil.copytree(source, dest)
    return out_dir / split

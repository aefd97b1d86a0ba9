"""hrpose-synth --shard I/N and --merge: two shards make the unsharded dataset, file for file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import BOX_ENTRY, write_objects_yaml

from hrpose_ros.data.bop import read_dataset
from hrpose_ros.data.shards import MANIFEST, ShardError, merge_shards, parse_shard, shard_images, shard_scenes
from hrpose_ros.data.synthetic import main

NUM_IMAGES, PER_SCENE = 5, 2
"""3 scenes of 2, 2 and 1 images: shard 0/2 gets scene 0, shard 1/2 scenes 1 and 2."""


def _synth(objects: Path, out: Path, *extra: str, seed: int = 3) -> int:
    return main(["--out", str(out), "--catalogue", str(objects), "--num-images", str(NUM_IMAGES),
                 "--images-per-scene", str(PER_SCENE), "--seed", str(seed), "--width", "128",
                 "--height", "96", "--mode", "render", "--distractors", "0", "1", "--image-ext", "png",
                 *extra])  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/whole (unsharded), root/shard0 and root/shard1 (--shard 0/2, 1/2), root/merged."""
    root = tmp_path_factory.mktemp("shards")
    objects = write_objects_yaml(root / "objects.yaml", [BOX_ENTRY])
    assert _synth(objects, root / "whole") == 0
    assert _synth(objects, root / "shard1", "--shard", "1/2") == 0  # any order, any machine
    assert _synth(objects, root / "shard0", "--shard", "0/2") == 0
    assert main(["--out", str(root / "merged"), "--merge", str(root / "shard0"), str(root / "shard1")]) == 0
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_two_shards_merge_into_exactly_the_unsharded_files(made: Path) -> None:
    whole, merged = _files(made / "whole"), _files(made / "merged")
    assert sorted(merged) == sorted(whole)
    assert [name for name in whole if whole[name] != merged[name]] == []
    assert sum(name.endswith(".png") and "/rgb/" in name for name in whole) == NUM_IMAGES


def test_the_merged_ground_truth_is_the_unsharded_one(made: Path) -> None:
    whole, merged = read_dataset(made / "whole"), read_dataset(made / "merged")
    assert [(im.scene_id, im.im_id) for im in merged] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    for a, b in zip(whole, merged, strict=True):
        assert (a.scene_id, a.im_id, len(a.instances)) == (b.scene_id, b.im_id, len(b.instances))
        assert np.array_equal(a.K, b.K)
        for x, y in zip(a.instances, b.instances, strict=True):
            assert (x.obj_id, x.R.tolist(), x.t.tolist()) == (y.obj_id, y.R.tolist(), y.t.tolist())


def test_shards_hold_disjoint_whole_scenes_and_a_manifest(made: Path) -> None:
    scenes = [sorted(p.name for p in (made / f"shard{i}" / "train_synt").iterdir()) for i in (0, 1)]
    assert scenes == [["000000"], ["000001", "000002"]]
    manifest = json.loads((made / "shard1" / MANIFEST).read_text())
    assert (manifest["shard"], manifest["scenes"], manifest["dataset"]["seed"]) == ([1, 2], [1, 2], 3)
    assert not (made / "merged" / MANIFEST).exists() and not (made / "whole" / MANIFEST).exists()


def test_merge_refuses_missing_repeated_foreign_shards_and_an_occupied_folder(made: Path, tmp_path) -> None:
    objects = made / "objects.yaml"
    with pytest.raises(ShardError, match="missing 1/2"):
        merge_shards(tmp_path / "a", [made / "shard0"], progress=False)
    with pytest.raises(ShardError, match="missing 1/2; given twice 0/2"):
        merge_shards(tmp_path / "b", [made / "shard0", made / "shard0"], progress=False)
    assert _synth(objects, tmp_path / "other1", "--shard", "1/2", seed=4) == 0
    with pytest.raises(ShardError, match=r"another dataset .*\{'seed': 4\} != \{'seed': 3\}"):
        merge_shards(tmp_path / "c", [made / "shard0", tmp_path / "other1"], progress=False)
    with pytest.raises(ShardError, match="exists already"):
        merge_shards(made / "merged", [made / "shard0", made / "shard1"], progress=False)
    with pytest.raises(ShardError, match=r"no shard\.json"):
        merge_shards(tmp_path / "d", [made / "shard0", made / "whole"], progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()  # checked before copying


def test_shard_ranges_cover_the_images_once_in_whole_scenes() -> None:
    for num_images, per_scene, count in [(5, 2, 2), (1000, 7, 8), (12, 3, 4), (10, 10, 1)]:
        blocks = [shard_images(num_images, per_scene, i, count) for i in range(count)]
        assert [i for block in blocks for i in block] == list(range(num_images))
        assert all(b.start % per_scene == 0 for b in blocks)
        scenes = [shard_scenes(num_images, per_scene, i, count) for i in range(count)]
        assert all(len(s) >= 1 for s in scenes)


def test_bad_shard_arguments_are_named(tmp_path, capsys) -> None:
    assert parse_shard("3/4") == (3, 4)
    for text in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ShardError, match="--shard"):
            parse_shard(text)
    with pytest.raises(ShardError, match="only 3 scenes: use at most 3 shards"):
        shard_scenes(5, 2, 0, 4)
    objects = write_objects_yaml(tmp_path / "objects.yaml", [BOX_ENTRY])
    assert _synth(objects, tmp_path / "x", "--shard", "2/2") == 1
    assert "need 0 <= I < N" in capsys.readouterr().err
    assert _synth(objects, tmp_path / "x", "--shard", "0/4") == 1
    assert "use at most 3 shards" in capsys.readouterr().err

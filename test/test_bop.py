"""BOP layout reader and writer: the official layout, round trips, units, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import LINEMOD_K, rotation

from hrpose_ros.data.bop import (
    BopError,
    BopSceneWriter,
    GtInstance,
    find_scene_dirs,
    gt_info_from_masks,
    read_dataset,
    read_models_info,
    read_scene,
)

HANDMADE = Path(__file__).parent / "data" / "bop_handmade"


def test_reads_the_handmade_two_image_folder_in_the_official_layout():
    images = read_dataset(HANDMADE)
    assert [(im.scene_id, im.im_id) for im in images] == [(2, 0), (2, 3)]
    first, second = images
    np.testing.assert_array_equal(first.K, LINEMOD_K)
    np.testing.assert_array_equal(second.K, [[600.0, 0, 3.5], [0, 601.5, 2.5], [0, 0, 1]])
    assert (first.depth_scale, second.depth_scale) == (1.0, 0.1)
    assert [i.obj_id for i in first.instances] == [1, 5]
    np.testing.assert_array_equal(first.instances[0].R, np.eye(3))
    np.testing.assert_allclose(first.instances[0].t, [0.0105, -0.02, 0.8], rtol=0, atol=1e-15)  # mm -> m
    np.testing.assert_array_equal(first.instances[1].R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(second.instances[0].t, [0.0, 0.0, 0.65], rtol=0, atol=1e-15)
    assert first.infos[0].visib_fract == 0.75 and first.infos[0].bbox_obj == (1, 1, 4, 3)
    assert second.rgb_path.name == "000003.png"


def test_handmade_masks_agree_with_their_gt_info():
    for image in read_dataset(HANDMADE):
        for gt_idx, info in enumerate(image.infos):
            mask = image.load_mask_visib(gt_idx)
            assert mask.shape == (6, 8)
            x, y, w, h = info.bbox_visib
            assert mask.sum() == info.px_count_visib
            assert mask[y : y + h, x : x + w].all()


def test_models_info_is_converted_to_metres_with_symmetry_flag():
    infos = read_models_info(HANDMADE / "models" / "models_info.json")
    assert sorted(infos) == [1, 5]
    assert infos[1].diameter == pytest.approx(0.102099)
    np.testing.assert_allclose(infos[5].bbox_min, [-0.0503958, -0.0908979, -0.096867])
    np.testing.assert_allclose(infos[5].bbox_size, [0.100792, 0.181796, 0.193734])
    assert (infos[1].symmetric, infos[5].symmetric) == (False, True)


def test_written_poses_and_intrinsics_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    writer = BopSceneWriter(tmp_path / "train" / "000004", image_ext="png")
    truth = {}
    for im_id in (0, 1, 7):
        K = LINEMOD_K * rng.uniform(0.5, 1.5)
        K[2] = (0, 0, 1)
        instances = [
            GtInstance(int(rng.integers(1, 20)), rotation(rng), rng.uniform(-0.5, 1.5, 3)) for _ in range(3)
        ]
        masks = [rng.random((12, 16)) > 0.5 for _ in instances]
        writer.add(im_id, rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), K, instances, masks)
        truth[im_id] = (K, instances, masks)
    writer.close()
    images = read_dataset(tmp_path)
    assert [im.im_id for im in images] == [0, 1, 7]
    for image in images:
        K, instances, masks = truth[image.im_id]
        np.testing.assert_array_equal(image.K, K)  # no unit conversion: bit-exact
        for gt_idx, (got, want) in enumerate(zip(image.instances, instances, strict=True)):
            assert got.obj_id == want.obj_id
            np.testing.assert_array_equal(got.R, want.R)
            np.testing.assert_allclose(got.t, want.t, rtol=0, atol=1e-12)  # via millimetres
            np.testing.assert_array_equal(image.load_mask_visib(gt_idx), masks[gt_idx])


def test_translations_are_stored_in_millimetres(tmp_path):
    writer = BopSceneWriter(tmp_path / "000000")
    writer.add(
        0,
        np.zeros((4, 4, 3), np.uint8),
        LINEMOD_K,
        [GtInstance(1, np.eye(3), np.array([0.1, 0.2, 0.5]))],
        [np.ones((4, 4), bool)],
    )
    writer.close()
    gt = json.loads((tmp_path / "000000" / "scene_gt.json").read_text())
    np.testing.assert_allclose(gt["0"][0]["cam_t_m2c"], [100.0, 200.0, 500.0])
    assert json.loads((tmp_path / "000000" / "scene_camera.json").read_text())["0"]["cam_K"][0] == 572.4114


def test_gt_info_from_masks_by_hand():
    full = np.zeros((6, 8), bool)
    full[1:4, 1:5] = True
    visib = full.copy()
    visib[:, 4] = False
    info = gt_info_from_masks(full, visib)
    assert info.bbox_obj == (1, 1, 4, 3) and info.bbox_visib == (1, 1, 3, 3)
    assert (info.px_count_all, info.px_count_visib, info.visib_fract) == (12, 9, 0.75)
    hidden = gt_info_from_masks(full, np.zeros_like(full))
    assert hidden.bbox_visib == (-1, -1, -1, -1) and hidden.visib_fract == 0.0


def test_gt_info_of_a_truncated_object_counts_its_whole_silhouette():
    """BOP: bbox_obj, px_count_all and visib_fract include the part outside the image."""
    full = np.zeros((6, 8), bool)
    full[0:3, 0:4] = True  # 12 px inside; the object goes on past the top-left corner
    info = gt_info_from_masks(full, full, ((-4, -2, 8, 5), 40))
    assert info.bbox_obj == (-4, -2, 8, 5) and info.bbox_visib == (0, 0, 4, 3)
    assert (info.px_count_all, info.px_count_valid, info.px_count_visib) == (40, 12, 12)
    assert info.visib_fract == pytest.approx(12 / 40)


def test_scene_folders_are_found_at_any_level():
    scene = HANDMADE / "test" / "000002"
    assert find_scene_dirs(scene) == [scene]
    assert find_scene_dirs(HANDMADE / "test") == [scene]
    assert find_scene_dirs(HANDMADE) == [scene]
    assert read_dataset(HANDMADE, scene_ids=[5]) == []


def test_missing_or_malformed_files_name_the_file(tmp_path):
    with pytest.raises(BopError, match="no BOP scene"):
        find_scene_dirs(tmp_path)
    scene = tmp_path / "000001"
    scene.mkdir()
    (scene / "scene_gt.json").write_text(
        '{"0": [{"cam_R_m2c": [1, 0, 0], "cam_t_m2c": [0, 0, 1], "obj_id": 1}]}'
    )
    with pytest.raises(BopError, match=r"scene_camera\.json"):
        read_scene(scene)
    (scene / "scene_camera.json").write_text('{"0": {"cam_K": [1, 0, 0, 0, 1, 0, 0, 0, 1]}}')
    with pytest.raises(BopError, match="cam_R_m2c"):
        read_scene(scene)

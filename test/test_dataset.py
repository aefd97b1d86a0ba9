"""BopPoseDataset: labels read back exactly, targets and image agree after augmentation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from data_fixtures import LINEMOD_K, cuboid_catalogue, rotation

from hrpose_ros.data.augment import AugmentParams
from hrpose_ros.data.bop import BopSceneWriter, GtInstance
from hrpose_ros.geometry.camera import project_points, scale_intrinsics
from hrpose_ros.geometry.keypoints import NUM_CORNERS, Keypoint
from hrpose_ros.geometry.objects import Catalogue
from hrpose_ros.geometry.targets import to_output_coords
from hrpose_ros.network.normalization import IMAGENET_MEAN, IMAGENET_STD
from hrpose_ros.training.dataset import BopPoseDataset, DatasetError, collate

torch.set_num_threads(1)

SRC = (320, 240)
K_SRC = scale_intrinsics(LINEMOD_K, 0.5, 0.5)
INPUT = (160, 120)
STRIDE = 4
CATALOGUE = cuboid_catalogue()
HANDMADE = Path(__file__).parent / "data" / "bop_handmade"
NO_PHOTO = {
    "blur_prob": 0.0,
    "noise_prob": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "hue_deg": 0.0,
}
NO_GEOM = {"rotation_deg": 0.0, "scale_range": (1.0, 1.0), "translate_fraction": 0.0}
AUGMENTS = {
    "none": None,
    "rotation": AugmentParams(rotation_deg=45.0, scale_range=(1.0, 1.0), translate_fraction=0.0, **NO_PHOTO),
    "scale": AugmentParams(rotation_deg=0.0, scale_range=(0.8, 1.25), translate_fraction=0.0, **NO_PHOTO),
    "shift": AugmentParams(rotation_deg=0.0, scale_range=(1.0, 1.0), translate_fraction=0.1, **NO_PHOTO),
    "photometric": AugmentParams(blur_prob=1.0, noise_prob=1.0, **NO_GEOM),
    "all": AugmentParams(blur_prob=1.0, noise_prob=1.0),
    "geometric": AugmentParams(**NO_PHOTO),
}


def _separated(kp: np.ndarray, min_gap: float) -> bool:
    return np.min(np.linalg.norm(kp[:, None] - kp[None], axis=-1) + np.eye(len(kp)) * 1e3) > min_gap


def _write_dot_scene(folder: Path, n_images: int = 4) -> dict:
    """Black images with a white dot at every projected keypoint; one instance of each
    class per image, side by side. Returns {im_id: (K, instances)}."""
    rng = np.random.default_rng(7)
    writer = BopSceneWriter(folder / "000000", image_ext="png")
    truth = {}
    for im_id in range(n_images):
        while True:
            instances = [
                GtInstance(spec.id, rotation(rng), np.array([x, rng.uniform(-0.03, 0.03), 0.7]))
                for spec, x in zip(CATALOGUE, (-0.09, 0.09), strict=True)
            ]
            uv = np.vstack(
                [
                    project_points(s.keypoints, i.R, i.t, K_SRC)
                    for s, i in zip(CATALOGUE, instances, strict=True)
                ]
            )
            if _separated(uv, 12.0):
                break
        img = np.zeros((SRC[1], SRC[0], 3), np.uint8)
        for x, y in uv:
            cv2.circle(img, (round(x * 16), round(y * 16)), 40, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
        masks = []
        for m in range(len(instances)):
            mask = np.zeros(img.shape[:2], np.uint8)
            cv2.fillConvexPoly(mask, cv2.convexHull(uv[9 * m : 9 * m + 9].astype(np.int32)), 1)
            masks.append(mask > 0)
        writer.add(im_id, img, K_SRC, instances, masks)
        truth[im_id] = (K_SRC.copy(), instances)
    writer.close()
    return truth


@pytest.fixture(scope="module")
def dot_scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dots")
    return folder, _write_dot_scene(folder)


def test_sample_has_the_documented_keys_shapes_and_types(dot_scene):
    sample = BopPoseDataset(dot_scene[0], CATALOGUE, INPUT, STRIDE)[0]
    assert sample["image"].shape == (3, 120, 160) and sample["image"].dtype == torch.float32
    assert sample["belief"].shape == (2 * 9, 30, 40) and sample["belief"].dtype == torch.float32
    assert sample["vectors"].shape == (2 * 16, 30, 40)
    assert sample["R"].shape == (2, 3, 3) and sample["t"].shape == (2, 3) and sample["K"].shape == (3, 3)
    assert sample["keypoints_2d"].shape == (2, 9, 2)
    assert sample["class_index"].tolist() == [0, 1] and sample["obj_id"].tolist() == [1, 2]
    assert sample["class_index"].dtype == torch.int64 and sample["visible"].all()


def test_loader_returns_exactly_the_written_poses_and_intrinsics(dot_scene):
    folder, truth = dot_scene
    ds = BopPoseDataset(folder, CATALOGUE, SRC, STRIDE)  # same size: no resampling
    for i in range(len(ds)):
        sample = ds[i]
        K, instances = truth[int(sample["im_id"])]
        np.testing.assert_array_equal(sample["K"].numpy(), K)
        for m, inst in enumerate(instances):
            np.testing.assert_array_equal(sample["R"][m].numpy(), inst.R)
            np.testing.assert_allclose(sample["t"][m].numpy(), inst.t, rtol=0, atol=1e-12)


def test_resize_uses_the_geometry_core_intrinsics_scaling(dot_scene):
    sample = BopPoseDataset(dot_scene[0], CATALOGUE, INPUT, STRIDE)[0]
    np.testing.assert_allclose(sample["K"].numpy(), scale_intrinsics(K_SRC, 0.5, 0.5), atol=1e-12)


def _refined_peak(belief: np.ndarray) -> np.ndarray:
    """Global maximum of a map, refined by the 3x3 weighted centroid, (x, y) output px."""
    y, x = np.unravel_index(np.argmax(belief), belief.shape)
    y0, x0 = max(y - 1, 0), max(x - 1, 0)
    win = belief[y0 : y + 2, x0 : x + 2]
    ys, xs = np.mgrid[y0 : y0 + win.shape[0], x0 : x0 + win.shape[1]]
    return np.array([(xs * win).sum(), (ys * win).sum()]) / win.sum()


CROPS = {"whole": None, "crop": (64, 64)}


@pytest.mark.parametrize("crop", sorted(CROPS))
@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_targets_land_on_the_projected_keypoints_after_each_augmentation(dot_scene, name, crop):
    ds = BopPoseDataset(
        dot_scene[0], CATALOGUE, INPUT, STRIDE, augment=AUGMENTS[name], seed=3, crop_size=CROPS[crop]
    )
    h, w = ds[0]["belief"].shape[-2:]
    checked = 0
    for i in range(len(ds)):
        s = ds[i]
        belief, vectors = s["belief"].numpy(), s["vectors"].numpy()
        for m, c in enumerate(s["class_index"].tolist()):
            kp = project_points(CATALOGUE[c].keypoints, s["R"][m].numpy(), s["t"][m].numpy(), s["K"].numpy())
            np.testing.assert_allclose(s["keypoints_2d"][m].numpy(), kp, atol=1e-9)
            out = to_output_coords(kp, STRIDE)
            for k in range(9):
                if not (1 <= out[k, 0] <= w - 2 and 1 <= out[k, 1] <= h - 2):
                    continue  # a peak at the border is cut off
                np.testing.assert_allclose(_refined_peak(belief[c * 9 + k]), out[k], atol=1.0)
                checked += 1
                if k < NUM_CORNERS:  # the vector at the corner points at the centroid
                    px, py = np.round(out[k]).astype(int)
                    v = vectors[c * 16 + 2 * k : c * 16 + 2 * k + 2, py, px]
                    d = out[Keypoint.CENTROID] - out[k]
                    assert v @ d / np.linalg.norm(d) > 0.99
    assert checked > (40 if crop == "whole" else 15)


@pytest.mark.parametrize("crop", sorted(CROPS))
@pytest.mark.parametrize("name", ["none", "rotation", "scale", "shift", "geometric"])
def test_image_shows_the_dots_at_the_returned_keypoints(dot_scene, name, crop):
    ds = BopPoseDataset(
        dot_scene[0], CATALOGUE, INPUT, STRIDE, augment=AUGMENTS[name], seed=5, crop_size=CROPS[crop]
    )
    seen = 0
    for i in range(len(ds)):
        s = ds[i]
        img = (s["image"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN).mean(axis=2)
        for xy in s["keypoints_2d"].numpy().reshape(-1, 2):
            x, y = np.round(xy).astype(int)
            if not (4 <= x < img.shape[1] - 4 and 4 <= y < img.shape[0] - 4):
                continue
            seen += 1
            win = img[y - 3 : y + 4, x - 3 : x + 4]
            assert win.max() > 0.5, f"no dot at {xy}"  # the background is black (about -2)
            win = np.clip(win - 0.5 * (win.max() + win.min()), 0, None)
            ys, xs = np.mgrid[y - 3 : y + 4, x - 3 : x + 4]
            centre = np.array([(xs * win).sum(), (ys * win).sum()]) / win.sum()
            np.testing.assert_allclose(centre, xy, atol=1.0)
    assert seen > 10


def test_crop_windows_show_objects_at_the_run_time_scale_around_their_centre(dot_scene):
    """A crop keeps the letterbox scale of the network input (here 0.5 of the source) and
    puts the chosen object's centroid near the window centre (at most the offset fraction
    away, no zoom, no roll)."""
    params = AugmentParams(rotation_deg=0.0, scale_range=(1.0, 1.0), translate_fraction=0.0, **NO_PHOTO)
    ds = BopPoseDataset(dot_scene[0], CATALOGUE, INPUT, STRIDE, augment=params, seed=1, crop_size=(64, 32))
    for i in range(len(ds)):
        s = ds[i]
        assert s["image"].shape == (3, 32, 64) and s["belief"].shape == (18, 8, 16)
        K = s["K"].numpy()
        np.testing.assert_allclose(K[[0, 1], [0, 1]], K_SRC[[0, 1], [0, 1]] * 0.5, rtol=1e-12)
        centroids = s["keypoints_2d"].numpy()[:, Keypoint.CENTROID]
        offsets = np.abs(centroids - [31.5, 15.5]) / [64, 32]
        assert np.any(np.all(offsets <= 0.35 + 1e-9, axis=1)), centroids


def test_symmetric_objects_get_one_canonical_pose(tmp_path):
    """Two poses of a half-turn-symmetric object that differ by its symmetry give the same
    labels: the same R, t and corner positions."""
    half_turn = [-1.0, 0, 0, 0, 0, -1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1]
    spec = CATALOGUE[0]
    catalogue = Catalogue([replace(spec, symmetric=True, symmetries=(np.array(half_turn),))])
    R = rotation(np.random.default_rng(3))
    t = np.array([0.0, 0.0, 0.7])
    S = np.array(half_turn).reshape(4, 4)[:3, :3]
    writer = BopSceneWriter(tmp_path / "000000", image_ext="png")
    image = np.zeros((SRC[1], SRC[0], 3), np.uint8)
    for im_id, pose_R in enumerate((R, R @ S)):
        writer.add(im_id, image, K_SRC, [GtInstance(spec.id, pose_R, t)], [np.ones(image.shape[:2], bool)])
    writer.close()
    ds = BopPoseDataset(tmp_path, catalogue, SRC, STRIDE)
    a, b = ds[0], ds[1]
    np.testing.assert_allclose(a["R"].numpy(), b["R"].numpy(), atol=1e-12)
    np.testing.assert_allclose(a["keypoints_2d"].numpy(), b["keypoints_2d"].numpy(), atol=1e-9)
    # the canonical one of the two is the smaller rotation (larger trace)
    assert np.trace(a["R"][0].numpy()) == pytest.approx(max(np.trace(R), np.trace(R @ S)), abs=1e-12)


def test_symmetric_objects_carry_the_keypoints_and_offsets_of_their_other_equivalent(tmp_path):
    """``keypoints_2d_alternatives`` holds the half-turned twin's keypoints (NaN for an object
    without symmetries), and ``offset_alternatives`` the offsets they give, built on the
    training device the same as in the loader."""
    from hrpose_ros.geometry.symmetry import equivalent_poses  # noqa: PLC0415
    from hrpose_ros.geometry.targets import corner_offsets  # noqa: PLC0415
    from hrpose_ros.training.config import TrainConfig  # noqa: PLC0415
    from hrpose_ros.training.train import _targets  # noqa: PLC0415

    half_turn = np.array([-1.0, 0, 0, 0.001, 0, -1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1])
    catalogue = Catalogue([replace(CATALOGUE[0], symmetric=True, symmetries=(half_turn,)), CATALOGUE[1]])
    writer = BopSceneWriter(tmp_path / "000000", image_ext="png")
    image = np.zeros((SRC[1], SRC[0], 3), np.uint8)
    poses = [
        (rotation(np.random.default_rng(4)), np.array([-0.06, 0.0, 0.7])),
        (np.eye(3), np.array([0.08, 0.0, 0.7])),
    ]
    instances = [GtInstance(spec.id, R, t) for spec, (R, t) in zip(catalogue, poses, strict=True)]
    writer.add(0, image, K_SRC, instances, [np.ones(image.shape[:2], bool)] * 2)
    writer.close()
    ds = BopPoseDataset(tmp_path, catalogue, SRC, STRIDE, vector_field="corner_offsets", offset_scale=4.0)
    s = ds[0]
    assert ds.num_alternatives == 1 and s["keypoints_2d_alternatives"].shape == (2, 1, 9, 2)
    R_eq, t_eq = equivalent_poses(s["R"][0].numpy(), s["t"][0].numpy(), catalogue[0].symmetries)
    twin = project_points(catalogue.keypoints_3d()[0], R_eq[1], t_eq[1], s["K"].numpy())
    np.testing.assert_allclose(s["keypoints_2d_alternatives"][0, 0].numpy(), twin, atol=1e-9)
    assert not np.allclose(twin[:NUM_CORNERS], s["keypoints_2d"][0, :NUM_CORNERS].numpy(), atol=1.0)
    assert torch.isnan(s["keypoints_2d_alternatives"][1]).all()  # no symmetries: no twin
    out_hw = (SRC[1] // STRIDE, SRC[0] // STRIDE)
    expected = corner_offsets(
        s["keypoints_2d_alternatives"][:, 0].numpy(), s["class_index"].numpy(), 2, out_hw, STRIDE, 3.0, 4.0
    )
    np.testing.assert_allclose(s["offset_alternatives"][0].numpy(), expected, atol=1e-6)
    assert (
        s["offset_alternatives"][0, :16].abs().sum() > 0 and s["offset_alternatives"][0, 16:].abs().sum() == 0
    )
    batch = collate([s, s])
    device_batch = {k: v for k, v in batch.items() if k not in ("belief", "vectors", "offset_alternatives")}
    cfg = TrainConfig()
    cfg = replace(cfg, data=replace(cfg.data, vector_field="corner_offsets", offset_scale=4.0, radius=3.0))
    on_device = _targets(device_batch, cfg, 2)[2]  # built by the training loop, as on a GPU
    torch.testing.assert_close(on_device, batch["offset_alternatives"], atol=1e-5, rtol=0)
    canonical_only = replace(cfg, loss=replace(cfg.loss, symmetric_offsets=False))
    assert (
        _targets(device_batch, canonical_only, 2)[2] is None and _targets(batch, canonical_only, 2)[2] is None
    )
    plain = BopPoseDataset(tmp_path, Catalogue([CATALOGUE[0], CATALOGUE[1]]), SRC, STRIDE)[0]
    assert "keypoints_2d_alternatives" not in plain and "offset_alternatives" not in plain


def test_hardly_visible_instances_get_no_targets(tmp_path):
    writer = BopSceneWriter(tmp_path / "000000", image_ext="png")
    full = np.zeros((SRC[1], SRC[0]), bool)
    full[100:140, 100:140] = True
    visib = np.zeros_like(full)
    visib[100:102, 100:102] = True  # 4 of 1600 pixels visible
    inst = GtInstance(2, np.eye(3), np.array([0.0, 0.0, 0.6]))
    writer.add(0, np.zeros((SRC[1], SRC[0], 3), np.uint8), K_SRC, [inst], [visib], masks_all=[full])
    writer.close()
    s = BopPoseDataset(tmp_path, CATALOGUE, INPUT, STRIDE, min_visib_fract=0.1)[0]
    assert s["visible"].tolist() == [False] and torch.isfinite(s["keypoints_2d"]).all()
    assert s["belief"].abs().sum() == 0 and s["vectors"].abs().sum() == 0
    s = BopPoseDataset(tmp_path, CATALOGUE, INPUT, STRIDE, min_visib_fract=0.0)[0]
    assert s["belief"][9:18].max() > 0.9  # class 1 (obj_id 2) channels


def test_collate_pads_a_variable_number_of_instances():
    ds = BopPoseDataset(HANDMADE, cuboid_catalogue_with_ids((1, 5)), (8, 8), STRIDE)
    batch = collate([ds[0], ds[1]])
    assert batch["num_instances"].tolist() == [2, 1]
    assert batch["R"].shape == (2, 2, 3, 3) and torch.isnan(batch["R"][1, 1]).all()
    assert batch["obj_id"].tolist() == [[1, 5], [5, -1]] and batch["class_index"][1, 1] == -1
    assert batch["visible"].tolist() == [[True, True], [True, False]]
    assert batch["image"].shape == (2, 3, 8, 8) and batch["belief"].shape == (2, 18, 2, 2)


def cuboid_catalogue_with_ids(ids):
    from hrpose_ros.geometry.objects import ObjectSpec  # noqa: PLC0415

    return Catalogue(ObjectSpec(f"o{i}", i, CATALOGUE[0].keypoints, 0.1, False, (1.0, 1.0, 1.0)) for i in ids)


def test_handmade_folder_through_the_dataset_keeps_its_labels():
    ds = BopPoseDataset(HANDMADE, cuboid_catalogue_with_ids((5,)), (8, 8), STRIDE)
    first, second = ds[0], ds[1]
    assert first["obj_id"].tolist() == [5] and second["obj_id"].tolist() == [5]  # obj 1 is not a class
    np.testing.assert_array_equal(first["R"][0].numpy(), [[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(first["t"][0].numpy(), [-0.05, 0.03, 1.0], rtol=0, atol=1e-15)


def test_dataloader_with_workers_batches_samples(dot_scene):
    ds = BopPoseDataset(dot_scene[0], CATALOGUE, INPUT, STRIDE, augment=AugmentParams())
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["image"].shape == (2, 3, 120, 160)
    assert torch.isfinite(batches[1]["image"]).all()


@pytest.mark.parametrize("crop", sorted(CROPS))
def test_corner_offsets_at_the_centroid_point_to_the_projected_corners(dot_scene, crop):
    ds = BopPoseDataset(
        dot_scene[0], CATALOGUE, INPUT, STRIDE, augment=True, seed=5, crop_size=CROPS[crop],
        vector_field="corner_offsets", offset_scale=4.0,
    )  # fmt: skip
    h, w = ds[0]["vectors"].shape[-2:]
    checked = 0
    for i in range(len(ds)):
        s = ds[i]
        for m, c in enumerate(s["class_index"].tolist()):
            out = to_output_coords(s["keypoints_2d"][m].numpy(), STRIDE)
            px, py = np.round(out[Keypoint.CENTROID]).astype(int)
            if not (0 <= px < w and 0 <= py < h):
                continue
            offsets = s["vectors"][c * 16 : (c + 1) * 16, py, px].numpy().reshape(NUM_CORNERS, 2)
            np.testing.assert_allclose([px, py] + 4.0 * offsets, out[:NUM_CORNERS], atol=1e-4)
            checked += 1
    assert checked >= 4


def test_bad_arguments_are_named(dot_scene, tmp_path):
    with pytest.raises(DatasetError, match="vector_field"):
        BopPoseDataset(dot_scene[0], CATALOGUE, INPUT, STRIDE, vector_field="sideways")
    with pytest.raises(DatasetError, match="multiples of stride"):
        BopPoseDataset(dot_scene[0], CATALOGUE, (161, 120), STRIDE)
    with pytest.raises(DatasetError, match="no BOP scene"):
        BopPoseDataset(tmp_path, CATALOGUE, INPUT, STRIDE)

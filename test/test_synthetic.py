"""Synthetic generator: BOP output read back exactly, masks, modes, seeds, workers, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from data_fixtures import K_SMALL, LINEMOD_K, LMO_DIR, REPO, SMALL_SIZE, cuboid_catalogue, mesh_catalogue

from hrpose_ros.data.bop import read_dataset, read_models_info
from hrpose_ros.data.synthetic import (
    SceneGenerator,
    SynthConfig,
    SynthError,
    generate_dataset,
    main,
)
from hrpose_ros.geometry.camera import project_points, scale_intrinsics
from hrpose_ros.geometry.objects import load_catalogue, load_mesh_points
from hrpose_ros.training.dataset import BopPoseDataset

torch.set_num_threads(1)

SMALL = SynthConfig(
    width=SMALL_SIZE[0],
    height=SMALL_SIZE[1],
    K=tuple(K_SMALL.reshape(-1).tolist()),
    distance_m=(0.3, 0.6),
    objects_per_image=(1, 3),
    distractors_per_image=(0, 2),
    images_per_scene=4,
)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    return mesh_catalogue(tmp_path_factory.mktemp("meshes"))


@pytest.fixture(scope="module")
def generator(catalogue):
    return SceneGenerator(catalogue, SMALL)


@pytest.fixture(scope="module")
def generated(catalogue, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, catalogue, SMALL, num_images=6, seed=3, progress=False)
    return out


def test_loader_reads_back_exactly_the_generated_poses_and_intrinsics(generated, generator, catalogue):
    images = read_dataset(generated)
    assert [(im.scene_id, im.im_id) for im in images] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    dataset = BopPoseDataset(generated, catalogue, SMALL_SIZE)
    for index, image in enumerate(images):
        expected = generator.sample(np.random.default_rng([3, index]))  # image i depends on (seed, i) only
        sample = dataset[index]
        np.testing.assert_array_equal(image.K, K_SMALL)
        np.testing.assert_array_equal(sample["K"].numpy(), K_SMALL)
        assert [i.obj_id for i in image.instances] == [i.obj_id for i in expected.instances]
        assert sample["obj_id"].tolist() == [i.obj_id for i in expected.instances]
        for m, want in enumerate(expected.instances):
            np.testing.assert_array_equal(image.instances[m].R, want.R)
            np.testing.assert_array_equal(sample["R"][m].numpy(), want.R)
            np.testing.assert_allclose(image.instances[m].t, want.t, rtol=0, atol=1e-12)
            np.testing.assert_allclose(sample["t"][m].numpy(), want.t, rtol=0, atol=1e-12)


def test_models_info_describes_the_catalogue_in_millimetres(generated, catalogue):
    infos = read_models_info(generated / "models" / "models_info.json")
    assert sorted(infos) == [3, 7]
    for spec in catalogue:
        assert infos[spec.id].diameter == pytest.approx(spec.diameter)
        np.testing.assert_allclose(infos[spec.id].bbox_size, spec.bbox_size, atol=1e-9)


def test_masks_agree_with_gt_info_and_the_projected_meshes(generated, catalogue):
    checked = 0
    for image in read_dataset(generated):
        for gt_idx, (inst, info) in enumerate(zip(image.instances, image.infos, strict=True)):
            mask = image.load_mask_visib(gt_idx)
            assert mask.sum() == info.px_count_visib <= info.px_count_all
            assert info.visib_fract == pytest.approx(info.px_count_visib / max(info.px_count_all, 1))
            if info.visib_fract < 1.0 or info.px_count_all < 30:
                continue
            ys, xs = np.nonzero(mask)
            spec = catalogue.by_id(inst.obj_id)
            uv = project_points(load_mesh_points(spec.mesh_path, "m"), inst.R, inst.t, image.K)
            inside = np.all((uv >= 0) & (uv <= np.array(SMALL_SIZE) - 1))
            if inside:  # unoccluded, uncut, convex object
                # every mask pixel centre lies inside the projected outline ...
                assert xs.min() >= uv[:, 0].min() - 0.01 and xs.max() <= uv[:, 0].max() + 0.01
                assert ys.min() >= uv[:, 1].min() - 0.01 and ys.max() <= uv[:, 1].max() + 0.01
                # ... the box reaches its extremes to 1.5 px (a sharp corner can fall between
                # pixel rows), and the mask centroid is the outline's centroid to 1 px
                np.testing.assert_allclose([xs.min(), ys.min()], uv.min(axis=0), atol=1.5)
                np.testing.assert_allclose([xs.max(), ys.max()], uv.max(axis=0), atol=1.5)
                np.testing.assert_allclose([xs.mean(), ys.mean()], _hull_centroid(uv), atol=1.0)
                checked += 1
    assert checked >= 3


def _hull_centroid(uv: np.ndarray) -> np.ndarray:
    """Area centroid of the convex hull of 2D points (the outline of a convex body)."""
    hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    x, y = hull[:, 0], hull[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (3 * cross.sum())


@pytest.mark.parametrize("mode", ["render", "cut_paste"])
def test_visible_masks_are_disjoint_parts_of_the_full_silhouettes(catalogue, generator, mode):
    generator.config = replace(SMALL, mode=mode, objects_per_image=(3, 3))
    try:
        occluded = 0
        for i in range(6):
            s = generator.sample(np.random.default_rng([11, i]))
            assert s.mode == mode and len(s.instances) == 3
            total = np.zeros(SMALL_SIZE[::-1], int)
            for visib, full in zip(s.masks_visib, s.masks_all, strict=True):
                assert not np.any(visib & ~full)
                occluded += int((full & ~visib).any())
                total += visib
            assert total.max() <= 1
        assert occluded > 0  # three objects in a small image do overlap
    finally:
        generator.config = SMALL


def test_distractors_are_drawn_but_not_annotated(catalogue, tmp_path):
    bg = np.full((60, 80, 3), (30, 120, 200), np.uint8)
    cv2.imwrite(str(tmp_path / "wall.png"), bg)
    config = replace(
        SMALL,
        objects_per_image=(1, 1),
        distractors_per_image=(3, 3),
        background_dir=str(tmp_path),
        background_image_prob=1.0,
        jitter=0.0,
        blur_prob=0.0,
        noise_prob=0.0,
        mode="render",
    )
    gen = SceneGenerator(catalogue, config, targets=["box"])
    with_distractor_pixels = 0
    for i in range(4):
        s = gen.sample(np.random.default_rng(i))
        assert [inst.obj_id for inst in s.instances] == [3]
        background = np.all(np.abs(s.rgb.astype(int) - (200, 120, 30)) <= 2, axis=2)  # BGR file -> RGB
        assert background.mean() > 0.3  # the photo is the background
        with_distractor_pixels += int((~background & ~s.masks_all[0]).sum() > 20)
    assert with_distractor_pixels >= 3


def test_light_ranges_set_how_bright_the_objects_are(catalogue):
    """A held-out set with other lighting must really look different: dim light, dark objects."""
    plain = replace(SMALL, objects_per_image=(2, 2), jitter=0.0, blur_prob=0.0, noise_prob=0.0, mode="render")
    brightness = {}
    for name, intensity, ambient in (("dim", (0.1, 0.1), (0.05, 0.05)), ("bright", (1.6, 1.6), (0.6, 0.6))):
        gen = SceneGenerator(catalogue, replace(plain, light_intensity=intensity, ambient=ambient))
        s = gen.sample(np.random.default_rng([9, 0]))
        on_objects = np.any(s.masks_visib, axis=0)
        assert on_objects.sum() > 50
        brightness[name] = float(s.rgb[on_objects].mean())
    assert brightness["bright"] > 2.5 * brightness["dim"]


def test_same_seed_same_image_and_other_seed_differs(generator):
    a = generator.sample(np.random.default_rng([5, 0]))
    b = generator.sample(np.random.default_rng([5, 0]))
    c = generator.sample(np.random.default_rng([6, 0]))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.array_equal(a.rgb, c.rgb)


@pytest.mark.slow
def test_two_worker_processes_write_the_same_files_as_one(catalogue, tmp_path):
    for workers in (1, 2):
        generate_dataset(
            tmp_path / f"w{workers}", catalogue, SMALL, num_images=6, seed=9, workers=workers, progress=False
        )
    files = sorted(p.relative_to(tmp_path / "w1") for p in (tmp_path / "w1").rglob("*") if p.is_file())
    assert len(files) > 15
    for rel in files:
        assert (tmp_path / "w2" / rel).read_bytes() == (tmp_path / "w1" / rel).read_bytes(), rel


def test_cli_writes_a_bop_dataset_for_a_user_catalogue(catalogue, tmp_path):
    yaml_path = tmp_path / "objects.yaml"
    mesh_dir = catalogue[0].mesh_path.parent
    yaml_path.write_text(
        f"mesh_dir: {mesh_dir}\nmesh_units: m\nobjects:\n"
        "  - {name: box, id: 3, mesh: box.ply, symmetric: false, color: [1, 0, 0]}\n"
        "  - {name: ball, id: 7, mesh: ball.ply, symmetric: true, color: [0, 1, 0]}\n"
    )
    camera = tmp_path / "camera.json"
    camera.write_text(
        json.dumps({"fx": 143.1, "fy": 143.4, "cx": 81.3, "cy": 60.5, "width": 160, "height": 120})
    )
    rc = main(
        [
            "--out",
            str(tmp_path / "out"),
            "--num-images",
            "3",
            "--catalogue",
            str(yaml_path),
            "--camera",
            str(camera),
            "--classes",
            "ball",
            "--distance",
            "0.3",
            "0.6",
            "--image-ext",
            "png",
            "--depth",
            "--mode",
            "cut_paste",
        ]
    )
    assert rc == 0
    images = read_dataset(tmp_path / "out" / "train_synt")
    assert len(images) == 3 and all(i.rgb_path.suffix == ".png" for i in images)
    assert {inst.obj_id for im in images for inst in im.instances} == {7}  # the box is only a distractor
    np.testing.assert_allclose(images[0].K, [[143.1, 0, 81.3], [0, 143.4, 60.5], [0, 0, 1]])
    depth = cv2.imread(str(images[0].scene_dir / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (120, 160)
    vals = depth[depth > 0] * images[0].depth_scale / 1000.0  # metres
    assert vals.size and vals.min() > 0.2 and vals.max() < 0.7
    assert sorted(read_models_info(tmp_path / "out" / "models" / "models_info.json")) == [7]


def _box_catalogue(folder: Path) -> Path:
    """A catalogue YAML of one mesh-less 8x6x4 cm box."""
    path = folder / "objects.yaml"
    path.write_text(
        "objects:\n  - {name: box, id: 3, bbox_min: [-0.04, -0.03, -0.02], bbox_size: [0.08, 0.06, 0.04],"
        " diameter: 0.108, symmetric: false, color: [1, 0, 0]}\n"
    )
    return path


def test_cli_width_and_height_scale_the_camera_intrinsics(tmp_path):
    yaml_path = _box_catalogue(tmp_path)
    out = tmp_path / "out"
    argv = ["--out", str(out), "--num-images", "1", "--catalogue", str(yaml_path), "--width", "320"]
    assert main([*argv, "--height", "240", "--image-ext", "png", "--mode", "render"]) == 0
    (image,) = read_dataset(out / "train_synt")
    expected = scale_intrinsics(LINEMOD_K, 0.5, 0.5)  # the LINEMOD camera's field of view at 320x240
    np.testing.assert_allclose(image.K, expected, atol=1e-6)
    assert cv2.imread(str(image.rgb_path)).shape == (240, 320, 3)


def test_cli_upright_prior_stands_every_object_on_one_table_per_image(tmp_path):
    yaml_path = _box_catalogue(tmp_path)
    out = tmp_path / "out"
    argv = ["--out", str(out), "--num-images", "3", "--catalogue", str(yaml_path), "--width", "160"]
    argv += ["--height", "120", "--objects-per-image", "2", "3", "--distractors", "0", "0"]
    argv += ["--pose-prior", "upright", "--elevation", "30", "30", "--camera-roll", "0", "--tilt", "0"]
    assert main(argv) == 0
    up = [0.0, -np.cos(np.pi / 6), -np.sin(np.pi / 6)]  # the table's normal, 30 degrees below level
    rotations = [inst.R for image in read_dataset(out / "train_synt") for inst in image.instances]
    assert len(rotations) >= 6
    for R in rotations:
        np.testing.assert_allclose(R[:, 2], up, atol=1e-5)  # the object's z stands on the normal
    assert np.ptp([np.arctan2(R[0, 0], R[2, 0]) for R in rotations]) > 0.5  # turned differently


@pytest.mark.slow
@pytest.mark.skipif(not LMO_DIR.is_dir(), reason=f"LM-O meshes not found at {LMO_DIR}")
@pytest.mark.parametrize("mode", ["render", "cut_paste"])
def test_lmo_objects_render_where_their_poses_project(mode):
    catalogue = load_catalogue(REPO / "config" / "objects.yaml", LMO_DIR)
    config = SynthConfig(mode=mode, max_faces=None, objects_per_image=(2, 2), distractors_per_image=(0, 0))
    gen = SceneGenerator(catalogue, config, targets=["ape", "driller"])
    checked = 0
    for i in range(3):
        s = gen.sample(np.random.default_rng([2, i]))
        for inst, visib, full in zip(s.instances, s.masks_visib, s.masks_all, strict=True):
            spec = catalogue.by_id(inst.obj_id)
            uv = project_points(spec.model_points(), inst.R, inst.t, s.K)
            if (full != visib).any() or not np.all((uv >= 0) & (uv <= [639, 479])):
                continue
            ys, xs = np.nonzero(full)
            np.testing.assert_allclose([xs.min(), ys.min()], uv.min(axis=0), atol=1.0)
            np.testing.assert_allclose([xs.max(), ys.max()], uv.max(axis=0), atol=1.0)
            checked += 1
    assert checked >= 2


def test_mesh_less_catalogue_objects_are_rendered_as_their_cuboids():
    catalogue = cuboid_catalogue()
    gen = SceneGenerator(catalogue, replace(SMALL, objects_per_image=(1, 1), distractors_per_image=(0, 0)))
    s = gen.sample(np.random.default_rng(4))
    spec = catalogue.by_id(s.instances[0].obj_id)
    uv = project_points(spec.keypoints[:8], s.instances[0].R, s.instances[0].t, s.K)
    ys, xs = np.nonzero(s.masks_all[0])
    assert len(xs) > 30
    np.testing.assert_allclose([xs.mean(), ys.mean()], _hull_centroid(uv), atol=1.0)


def test_bad_config_is_named():
    with pytest.raises(SynthError, match="mode"):
        SynthConfig(mode="paint")
    with pytest.raises(SynthError, match="distance_m"):
        SynthConfig(distance_m=(1.0, 0.5))
    with pytest.raises(SynthError, match="objects_per_image"):
        SynthConfig(objects_per_image=(3, 1))
    with pytest.raises(SynthError, match="light_intensity"):
        SynthConfig(light_intensity=(1.0, 0.2))
    with pytest.raises(SynthError, match="ambient"):
        SynthConfig(ambient=(-0.1, 0.2))
    with pytest.raises(SynthError, match="point_lights"):
        SynthConfig(point_lights=(0, 5))
    with pytest.raises(SynthError, match="point_intensity"):
        SynthConfig(point_intensity=(1.0, 0.5))
    with pytest.raises(SynthError, match="hemisphere_ambient"):
        SynthConfig(hemisphere_ambient=1.5)


def test_lamps_and_hemisphere_ambient_change_the_shading_not_the_annotation(catalogue):
    plain = replace(SMALL, objects_per_image=(2, 2), jitter=0.0, blur_prob=0.0, noise_prob=0.0, mode="render")
    rich = replace(plain, point_lights=(2, 2), point_intensity=(1.5, 1.5), hemisphere_ambient=1.0)
    a = SceneGenerator(catalogue, plain).sample(np.random.default_rng([4, 0]))
    b = SceneGenerator(catalogue, rich).sample(np.random.default_rng([4, 0]))
    # the light is drawn after the scene: same objects, poses and masks
    assert [(i.obj_id, i.t.tolist()) for i in a.instances] == [(i.obj_id, i.t.tolist()) for i in b.instances]
    np.testing.assert_array_equal(np.any(a.masks_visib, axis=0), np.any(b.masks_visib, axis=0))
    on = np.any(a.masks_visib, axis=0)
    assert np.abs(a.rgb[on].astype(int) - b.rgb[on].astype(int)).mean() > 5


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--distance", "1.0", "0.5"], "distance_m"),
        (["--pose-prior", "upright", "--elevation", "60", "10"], "elevation_deg"),
        (["--pose-prior", "upright", "--tilt", "120"], "tilt_deg"),
    ],
)
def test_cli_names_a_bad_option_in_one_line(tmp_path, capsys, flags, named):
    assert main(["--out", str(tmp_path / "out"), "--num-images", "1", *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hrpose-synth: error: ") and named in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_background_folder_is_named(catalogue, tmp_path):
    with pytest.raises(ValueError, match="background folder not found"):
        SceneGenerator(catalogue, replace(SMALL, background_dir=str(tmp_path / "nope")))


def test_written_images_are_rgb_in_the_right_channel_order(catalogue, tmp_path):
    config = replace(
        SMALL,
        objects_per_image=(1, 1),
        distractors_per_image=(0, 0),
        jitter=0.0,
        blur_prob=0.0,
        noise_prob=0.0,
        image_ext="png",
    )
    gen = SceneGenerator(catalogue, config)
    sample = gen.sample(np.random.default_rng(1))
    generate_dataset(tmp_path, catalogue, config, 1, seed=0, progress=False)
    written = cv2.imread(str(read_dataset(tmp_path)[0].rgb_path))[..., ::-1]
    expected = gen.sample(np.random.default_rng([0, 0])).rgb
    np.testing.assert_array_equal(written, expected)
    assert sample.rgb.dtype == np.uint8


def test_catalogue_defaults_point_at_the_package_config():
    assert Path(REPO / "config" / "objects.yaml").is_file()

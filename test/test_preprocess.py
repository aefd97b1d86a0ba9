"""Preprocessing: letterbox/resize geometry, intrinsics, colour order, normalisation, buffer reuse."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from hrpose_ros.geometry.camera import intrinsics_matrix, project_points
from hrpose_ros.runtime.preprocess import PreprocessError, Preprocessor

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _pre(size=(640, 480), mode="letterbox") -> Preprocessor:
    return Preprocessor(size, MEAN, STD, mode=mode)


def test_letterbox_of_720p_into_640x480_halves_and_pads_top_and_bottom():
    tr = _pre().transform_for((1280, 720))
    assert (tr.sx, tr.sy, tr.ox, tr.oy) == (0.5, 0.5, 0.0, 60.0)
    # pixel-centre convention: image pixel 0 spans [-0.5, 0.5] -> input [-0.5, 0]: centre -0.25
    np.testing.assert_allclose(
        tr.image_to_input(np.array([[0.0, 0.0], [1279.0, 719.0]])), [[-0.25, 59.75], [639.25, 419.25]]
    )


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
@pytest.mark.parametrize("image_size", [(1280, 720), (640, 480), (320, 240), (500, 700)])
def test_pixel_mapping_round_trips(mode, image_size):
    tr = _pre(mode=mode).transform_for(image_size)
    xy = np.random.default_rng(0).uniform(0, 300, (20, 2))
    np.testing.assert_allclose(tr.input_to_image(tr.image_to_input(xy)), xy, atol=1e-9)


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_adjusted_intrinsics_project_where_the_mapping_puts_points(mode):
    tr = _pre(mode=mode).transform_for((1280, 720))
    K = intrinsics_matrix(900.0, 905.0, 641.3, 358.2)
    pts = np.random.default_rng(1).uniform(-0.2, 0.2, (10, 3))
    R, t = np.eye(3), np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(
        project_points(pts, R, t, tr.adjust_intrinsics(K)),
        tr.image_to_input(project_points(pts, R, t, K)),
        atol=1e-9,
    )


def test_normalisation_of_a_constant_colour_and_mean_grey_padding():
    bgr = np.zeros((720, 1280, 3), dtype=np.uint8)
    bgr[...] = (10, 128, 250)  # B, G, R
    tensor, tr = _pre()(bgr, "bgr8")
    expected = (np.array([250, 128, 10]) / 255.0 - MEAN) / STD
    np.testing.assert_allclose(tensor[0, :, 240, 320], expected, rtol=1e-5)
    assert tensor.shape == (1, 3, 480, 640) and tensor.dtype == np.float32
    assert np.all(tensor[0, :, : int(tr.oy)] == 0.0) and np.all(tensor[0, :, -int(tr.oy) :] == 0.0)


def test_rgb_bgr_and_alpha_encodings_give_the_same_tensor():
    rgb = np.random.default_rng(2).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    pre = _pre()
    ref = pre(rgb, "rgb8")[0].copy()
    np.testing.assert_array_equal(pre(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8")[0], ref)
    rgba = np.concatenate([rgb, np.full((240, 320, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(pre(rgba, "rgba8")[0], ref)


def test_mono_images_fill_all_three_channels_from_grey():
    grey = np.full((480, 640), 100, dtype=np.uint8)
    tensor, _ = _pre()(grey, "mono8")
    np.testing.assert_allclose(tensor[0, :, 10, 10], (100 / 255.0 - np.array(MEAN)) / STD, rtol=1e-5)


def test_steady_state_reuses_buffers_and_allocates_no_frame_sized_memory():
    pre = _pre()
    image = np.random.default_rng(3).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    tensor, _ = pre(image)
    pre(image)
    tracemalloc.start()
    for _ in range(5):
        again, _ = pre(image)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert again is tensor
    assert peak < 64 * 1024, f"{peak} bytes allocated per frame"


def test_a_new_camera_size_reallocates_and_clears_old_padding():
    pre = _pre()
    pre(np.full((480, 640, 3), 255, np.uint8))
    tensor, tr = pre(np.full((720, 1280, 3), 255, np.uint8))
    assert tr.oy == 60 and np.all(tensor[0, :, :60] == 0.0)


@pytest.mark.parametrize(
    ("image", "encoding", "match"),
    [
        (np.zeros((10, 10, 3), np.uint8), "yuv422", "unsupported image encoding"),
        (np.zeros((10, 10, 3), np.uint16), "bgr8", "must be uint8"),
        (np.zeros((10, 10), np.uint8), "bgr8", "must be uint8"),
        (np.zeros((0, 10, 3), np.uint8), "bgr8", "must be uint8"),
    ],
)
def test_bad_images_are_refused_with_the_reason(image, encoding, match):
    with pytest.raises(PreprocessError, match=match):
        _pre()(image, encoding)


def test_unknown_mode_is_refused():
    with pytest.raises(PreprocessError, match="mode"):
        Preprocessor((64, 48), MEAN, STD, mode="crop")

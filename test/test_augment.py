"""Augmentation: geometric ops keep image, intrinsics, poses and keypoints consistent."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from data_fixtures import LINEMOD_K, cuboid_catalogue, rotation

from hrpose_ros.data.augment import (
    AugmentError,
    AugmentParams,
    add_noise,
    color_jitter,
    crop_view_transform,
    random_view_transform,
    roll_matrix,
    view_transform,
)
from hrpose_ros.geometry.camera import project_points, scale_intrinsics

SRC = (640, 480)
KP3D = cuboid_catalogue()[0].keypoints

GEOMETRIC_CASES = {
    "roll": {"angle_rad": 0.6},
    "roll_negative": {"angle_rad": -1.1},
    "zoom_in": {"scale": 1.3},
    "zoom_out": {"scale": 0.7},
    "shift": {"shift": (25.0, -13.0)},
    "resize": {},
    "all": {"angle_rad": 0.4, "scale": 1.2, "shift": (-30.0, 12.0)},
}


def _pose(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rotation(rng), np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.08, 0.08), rng.uniform(0.5, 1.0)])


@pytest.mark.parametrize("out_size", [(640, 480), (320, 240), (256, 192)])
@pytest.mark.parametrize("case", sorted(GEOMETRIC_CASES))
def test_new_pose_and_intrinsics_project_where_the_image_moved(case, out_size):
    R, t = _pose(1)
    view = view_transform(LINEMOD_K, SRC, out_size, **GEOMETRIC_CASES[case])
    R2, t2 = view.apply_pose(R, t)
    moved = view.apply_points(project_points(KP3D, R, t, LINEMOD_K))
    np.testing.assert_allclose(project_points(KP3D, R2, t2, view.K), moved, atol=1e-9)
    # K stays a pinhole matrix (no skew, no rotation terms) for PnP
    assert view.K[0, 1] == 0 and view.K[1, 0] == 0 and np.array_equal(view.K[2], [0, 0, 1])
    np.testing.assert_allclose(R2 @ R2.T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 0.5])
def test_crop_window_puts_the_chosen_pixel_at_its_centre_and_stays_exact(angle):
    R, t = _pose(2)
    centroid = project_points(KP3D[-1:], R, t, LINEMOD_K)[0]
    view = crop_view_transform(LINEMOD_K, 0.6, tuple(centroid), (96, 64), angle_rad=angle, offset=(5.0, -3.0))
    np.testing.assert_allclose(view.apply_points(centroid), [47.5 + 5.0, 31.5 - 3.0], atol=1e-9)
    R2, t2 = view.apply_pose(R, t)
    moved = view.apply_points(project_points(KP3D, R, t, LINEMOD_K))
    np.testing.assert_allclose(project_points(KP3D, R2, t2, view.K), moved, atol=1e-9)
    np.testing.assert_allclose(view.K[[0, 1], [0, 1]], 0.6 * LINEMOD_K[[0, 1], [0, 1]], rtol=1e-12)
    assert view.out_size == (96, 64)


def test_crop_window_matches_a_resize_then_a_cut():
    """Without roll, the window is the resized image's pixels (cv2 pixel-centre convention)."""
    img = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    small = cv2.resize(img, (320, 240), interpolation=cv2.INTER_LINEAR)
    # a window whose centre is resized pixel (100.5, 60.5): rows 45..76, cols 85..116
    center = ((100.5 + 0.5) / 0.5 - 0.5, (60.5 + 0.5) / 0.5 - 0.5)
    view = crop_view_transform(LINEMOD_K, 0.5, center, (32, 32))
    np.testing.assert_allclose(view.A[:2, 2], [-85.0 + 0.5 * 0.5 - 0.5, -45.0 + 0.5 * 0.5 - 0.5], atol=1e-9)
    window = view.warp(img)
    assert np.abs(window.astype(int) - small[45:77, 85:117].astype(int)).mean() < 1.0


def test_crop_window_rejects_bad_sizes():
    with pytest.raises(AugmentError, match="positive"):
        crop_view_transform(LINEMOD_K, 0.0, (10.0, 10.0), (32, 32))


def test_plain_resize_equals_the_geometry_core_scale_intrinsics():
    view = view_transform(LINEMOD_K, SRC, (320, 240))
    np.testing.assert_allclose(view.K, scale_intrinsics(LINEMOD_K, 0.5, 0.5), atol=1e-12)
    np.testing.assert_array_equal(view.R_roll, np.eye(3))


def test_roll_with_square_pixels_is_a_rotation_about_the_principal_point():
    K = np.array([[500.0, 0, 300.0], [0, 500.0, 200.0], [0, 0, 1]])
    view = view_transform(K, SRC, SRC, angle_rad=np.pi / 2)
    np.testing.assert_allclose(view.apply_points(np.array([300.0, 200.0])), [300.0, 200.0], atol=1e-9)
    np.testing.assert_allclose(view.apply_points(np.array([310.0, 200.0])), [300.0, 210.0], atol=1e-9)
    np.testing.assert_allclose(roll_matrix(np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def _dot_image(points: np.ndarray, size=SRC) -> np.ndarray:
    """Black image with a small anti-aliased white dot at each sub-pixel point."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    for x, y in points:
        cv2.circle(img, (round(x * 16), round(y * 16)), 2 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    return img


def _dot_centre(img: np.ndarray, xy: np.ndarray, radius: int = 5) -> np.ndarray:
    x0, y0 = round(xy[0]), round(xy[1])
    win = img[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1, 0].astype(float)
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    assert win.sum() > 0, f"no dot near {xy}"
    return np.array([(xs * win).sum(), (ys * win).sum()]) / win.sum()


def _separated_pose(seed: int, kp: np.ndarray, min_gap_px: float) -> tuple[np.ndarray, np.ndarray]:
    """A seeded pose whose projected keypoints are pairwise at least ``min_gap_px`` apart."""
    rng = np.random.default_rng(seed)
    while True:
        R, t = rotation(rng), np.array([0.0, 0.0, 1.5])
        uv = project_points(kp, R, t, LINEMOD_K)
        if np.min(np.linalg.norm(uv[:, None] - uv[None], axis=-1) + np.eye(9) * 1e3) > min_gap_px:
            return R, t


@pytest.mark.parametrize("seed", range(5))
def test_warped_image_shows_each_keypoint_where_the_new_pose_projects_it(seed):
    kp = KP3D * 4  # a 40 cm cuboid at 1.5 m: the dots stay apart and inside the image
    R, t = _separated_pose(seed, kp, 30.0)
    uv = project_points(kp, R, t, LINEMOD_K)
    params = AugmentParams(rotation_deg=40, scale_range=(0.8, 1.3), translate_fraction=0.05)
    view = random_view_transform(np.random.default_rng(seed), LINEMOD_K, SRC, (320, 240), params)
    warped = view.warp(_dot_image(uv))
    R2, t2 = view.apply_pose(R, t)
    for xy in project_points(kp, R2, t2, view.K):
        np.testing.assert_allclose(_dot_centre(warped, xy), xy, atol=0.5)  # well inside one pixel


def test_color_jitter_keeps_shape_and_moves_brightness_as_drawn():
    img = np.random.default_rng(0).integers(30, 200, (48, 64, 3), dtype=np.uint8)
    out = color_jitter(img, np.random.default_rng(1), brightness=0, contrast=0, saturation=0, hue_deg=0)
    np.testing.assert_array_equal(out, img)
    brighter = color_jitter(
        img, np.random.default_rng(1), brightness=0.3, contrast=0, saturation=0, hue_deg=0
    )
    factor = np.random.default_rng(1).uniform(0.7, 1.3)
    assert brighter.shape == img.shape and brighter.dtype == np.uint8
    assert brighter.mean() == pytest.approx(img.mean() * factor, rel=0.02)


def test_hue_shift_rotates_colours():
    red = np.zeros((4, 4, 3), np.uint8)
    red[...] = (200, 0, 0)
    shifted = color_jitter(
        red, np.random.default_rng(3), brightness=0, contrast=0, saturation=0, hue_deg=60.0
    )
    assert not np.array_equal(shifted, red) and shifted[..., 0].mean() > 100


def test_noise_has_the_requested_std():
    img = np.full((120, 160, 3), 128, np.uint8)
    noisy = add_noise(img, np.random.default_rng(0), 5.0).astype(float)
    assert (noisy - 128).std() == pytest.approx(5.0, rel=0.1)
    assert abs((noisy - 128).mean()) < 0.5


def test_bad_parameters_are_named():
    with pytest.raises(AugmentError, match="scale_range"):
        AugmentParams(scale_range=(1.2, 0.8))
    with pytest.raises(AugmentError, match="blur_prob"):
        AugmentParams(blur_prob=1.5)
    with pytest.raises(AugmentError, match="K must be"):
        view_transform(np.eye(2), SRC, SRC)

"""The moderngl renderer: geometry of masks and depth, occlusion, colours, textures."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import trimesh
from data_fixtures import K_SMALL, LINEMOD_K, LMO_DIR, SMALL_SIZE, colored_box, colored_icosphere, rotation
from PIL import Image

from hrpose_ros.data.render import (
    MAX_POINT_LIGHTS,
    Light,
    PointLight,
    Renderer,
    RenderError,
    RenderItem,
    gl_projection,
    load_render_mesh,
    mesh_from_trimesh,
    random_light,
)
from hrpose_ros.geometry.camera import project_points

W, H = SMALL_SIZE
FLAT = Light(color=(0.0, 0.0, 0.0), ambient=(1.0, 1.0, 1.0), specular=0.0)  # output = albedo
DARK = Light(color=(0.0, 0.0, 0.0), ambient=(0.0, 0.0, 0.0), specular=0.0)  # only lamps light


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(W, H)
    r.add_mesh("box", mesh_from_trimesh(colored_box()))
    r.add_mesh("ball", mesh_from_trimesh(colored_icosphere()))
    for key, extents in (("grey_plate", (0.12, 0.12, 0.02)), ("grey_cube", (0.1, 0.1, 0.1))):
        box = trimesh.creation.box(extents=extents)
        box.visual.vertex_colors = np.tile([128, 128, 128, 255], (len(box.vertices), 1)).astype(np.uint8)
        r.add_mesh(key, mesh_from_trimesh(box))
    yield r
    r.release()


def _hull_centroid(uv: np.ndarray) -> np.ndarray:
    """Area centroid of the convex hull of 2D points (the silhouette of a convex body)."""
    hull = cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    x, y = hull[:, 0], hull[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6 * area)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("key", ["box", "ball"])
def test_mask_centroid_and_bbox_match_the_projected_mesh(renderer, key, seed):
    rng = np.random.default_rng(seed)
    R, t = rotation(rng), np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.08, 0.08), rng.uniform(0.35, 0.6)])
    mesh = colored_box() if key == "box" else colored_icosphere()
    uv = project_points(mesh.vertices, R, t, K_SMALL)
    mask = renderer.render([RenderItem(key, R, t)], K_SMALL).instance == 1
    ys, xs = np.nonzero(mask)
    assert len(xs) > 50
    # pixel (i, j) has its centre at (j, i): the mask spans the pixel centres inside the outline
    np.testing.assert_allclose([xs.min(), ys.min()], uv.min(axis=0), atol=1.0)
    np.testing.assert_allclose([xs.max(), ys.max()], uv.max(axis=0), atol=1.0)
    np.testing.assert_allclose([xs.mean(), ys.mean()], _hull_centroid(uv), atol=1.0)


def test_mask_centroid_is_subpixel_accurate_for_a_large_box(renderer):
    # a tight bound (0.15 px) that a half-pixel convention error would break
    R = rotation(np.random.default_rng(42))
    t = np.array([0.01, -0.01, 0.3])
    uv = project_points(colored_box().vertices, R, t, K_SMALL)
    ys, xs = np.nonzero(renderer.render([RenderItem("box", R, t)], K_SMALL).instance == 1)
    np.testing.assert_allclose([xs.mean(), ys.mean()], _hull_centroid(uv), atol=0.15)


def test_depth_is_camera_z_in_metres(renderer):
    t = np.array([0.0, 0.0, 0.5])
    out = renderer.render([RenderItem("box", np.eye(3), t)], K_SMALL)
    u, v = project_points(np.zeros((1, 3)), np.eye(3), t, K_SMALL)[0]
    # the front face of the 4 cm deep box is at z = 0.5 - 0.02
    assert out.depth[round(v), round(u)] == pytest.approx(0.48, abs=1e-5)
    assert np.all(out.depth[out.instance == 0] == 0)


def test_nearer_object_occludes_the_farther_one(renderer):
    far = RenderItem("box", np.eye(3), np.array([0.06, 0.0, 0.8]))  # half hidden behind the ball
    near = RenderItem("ball", np.eye(3), np.array([0.0, 0.0, 0.4]))
    for items, near_id in (([far, near], 2), ([near, far], 1)):  # draw order must not matter
        out = renderer.render(items, K_SMALL)
        u, v = project_points(np.zeros((1, 3)), np.eye(3), near.t, K_SMALL)[0]
        assert out.instance[round(v), round(u)] == near_id
        assert set(np.unique(out.instance)) == {0, 1, 2}


def test_masks_alone_are_unoccluded_silhouettes(renderer):
    far = RenderItem("box", np.eye(3), np.array([0.01, 0.0, 0.8]))
    near = RenderItem("ball", np.eye(3), np.array([0.0, 0.0, 0.4]))
    scene = renderer.render([far, near], K_SMALL)
    alone = renderer.render_masks_alone([far, near], K_SMALL)
    single = renderer.render([far], K_SMALL).instance == 1
    np.testing.assert_array_equal(alone[0], single)
    assert alone[0].sum() > (scene.instance == 1).sum()  # part of the box is hidden in the scene
    np.testing.assert_array_equal(alone[1], scene.instance == 2)


@pytest.mark.parametrize("t", [(-0.2, 0.05, 0.35), (0.16, -0.13, 0.35), (0.0, 0.16, 0.3)])
def test_full_silhouette_of_a_cut_object_equals_a_render_on_a_larger_canvas(renderer, t):
    """BOP's bbox_obj / px_count_all of an object the border cuts, against the same object
    drawn on a canvas three times as wide and high (nine tiles around the image)."""
    R = rotation(np.random.default_rng(11))
    item = RenderItem("box", R, np.array(t))
    xs, ys = [], []
    for ty in (-1, 0, 1):
        for tx in (-1, 0, 1):
            K_tile = K_SMALL.copy()
            K_tile[0, 2] -= tx * W
            K_tile[1, 2] -= ty * H
            tile_ys, tile_xs = np.nonzero(renderer.render([item], K_tile).instance == 1)
            xs.append(tile_xs + tx * W)
            ys.append(tile_ys + ty * H)
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    inside = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    assert inside.any() and not inside.all()  # the case is a cut object
    full = renderer.full_silhouette(item, K_SMALL)
    assert full is not None
    (x0, y0, w, h), count = full
    assert (x0, y0, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert count == len(xs)


def test_full_silhouette_is_none_inside_the_image(renderer):
    assert renderer.full_silhouette(RenderItem("box", np.eye(3), np.array([0.0, 0.0, 0.6])), K_SMALL) is None


def test_vertex_colours_and_colour_gain_reach_the_image(renderer):
    box = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    box.visual.vertex_colors = np.tile([200, 100, 50, 255], (len(box.vertices), 1)).astype(np.uint8)
    renderer.add_mesh("plain", mesh_from_trimesh(box))
    out = renderer.render(
        [RenderItem("plain", np.eye(3), np.array([0, 0, 0.5]), (1.0, 0.5, 2.0))], K_SMALL, FLAT
    )
    pixels = out.rgb[out.instance == 1].astype(int)
    np.testing.assert_allclose(pixels.mean(axis=0), [200, 50, 100], atol=1.5)


def test_uv_texture_is_sampled_upright(renderer, tmp_path):
    # a quad facing the camera; texture: top half red, bottom half blue
    tex = np.zeros((64, 64, 3), np.uint8)
    tex[:32] = (255, 0, 0)
    tex[32:] = (0, 0, 255)
    v = np.array([[-0.05, -0.05, 0], [0.05, -0.05, 0], [0.05, 0.05, 0], [-0.05, 0.05, 0]])
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], float)  # object -y (image up) = texture top (v = 1)
    quad = trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 3]], process=False)
    quad.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(tex))
    quad.export(tmp_path / "quad.obj")
    renderer.add_mesh("quad", load_render_mesh(tmp_path / "quad.obj"))
    out = renderer.render([RenderItem("quad", np.eye(3), np.array([0, 0, 0.4]))], K_SMALL, FLAT)
    ys, xs = np.nonzero(out.instance == 1)
    top = out.rgb[ys.min() + 2, int(xs.mean())]
    bottom = out.rgb[ys.max() - 2, int(xs.mean())]
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


@pytest.mark.skipif(not LMO_DIR.is_dir(), reason=f"LM-O meshes not found at {LMO_DIR}")
def test_lmo_mesh_mask_bbox_matches_projected_vertices():
    r = Renderer(640, 480)
    try:
        mesh = load_render_mesh(LMO_DIR / "obj_000001.ply", scale=0.001)  # ape, millimetres
        r.add_mesh("ape", mesh)
        R, t = rotation(np.random.default_rng(3)), np.array([0.03, -0.02, 0.5])
        mask = r.render([RenderItem("ape", R, t)], LINEMOD_K).instance == 1
        uv = project_points(mesh.vertices.astype(np.float64), R, t, LINEMOD_K)
        ys, xs = np.nonzero(mask)
        # extreme vertices lie on the silhouette, so the boxes agree to a pixel
        np.testing.assert_allclose([xs.min(), ys.min()], uv.min(axis=0), atol=1.0)
        np.testing.assert_allclose([xs.max(), ys.max()], uv.max(axis=0), atol=1.0)
    finally:
        r.release()


def test_decimation_keeps_shape_and_colours():
    sphere = colored_icosphere()
    dense = mesh_from_trimesh(sphere)
    small = mesh_from_trimesh(sphere, max_faces=200)
    assert len(small.faces) <= 200 < len(dense.faces)
    np.testing.assert_allclose(small.bounds(), dense.bounds(), atol=0.004)
    assert small.colors.std() > 0.05  # colours moved over, not reset to the default grey


def test_projection_matches_opencv_pixel_centres():
    # a camera point projecting to pixel (j, i) must land at the centre of GL pixel (j, i)
    P = gl_projection(K_SMALL, W, H, 0.1, 10.0)
    X = np.array([0.03, -0.02, 0.7, 1.0])
    clip = P @ X
    ndc = clip[:2] / clip[3]
    u, v = project_points(X[None, :3], np.eye(3), np.zeros(3), K_SMALL)[0]
    np.testing.assert_allclose((ndc + 1) / 2 * [W, H] - 0.5, [u, v], atol=1e-9)


def test_point_light_lights_the_near_side_of_a_face_more(renderer):
    """A lamp just above a face facing the camera: its upper half, nearer, comes out brighter
    (a directional light would light the whole flat face alike)."""
    item = RenderItem("grey_plate", np.eye(3), np.array([0.0, 0.0, 0.5]))
    unlit = renderer.render([item], K_SMALL, DARK)
    assert unlit.rgb[unlit.instance == 1].max() == 0
    above = PointLight(position=(0.0, -0.08, 0.44), color=(2.0, 2.0, 2.0), reach_m=0.1)
    out = renderer.render([item], K_SMALL, replace(DARK, points=(above,)))
    on, grey = out.instance == 1, out.rgb.astype(float).mean(axis=2)
    rows = np.nonzero(on.any(axis=1))[0]
    half = len(rows) // 2
    assert _mean_grey(grey, on, rows[:half]) > 1.3 * _mean_grey(grey, on, rows[half:]) > 0


def test_lamp_strength_falls_with_distance(renderer):
    item = RenderItem("grey_cube", np.eye(3), np.array([0.0, 0.0, 0.5]))
    means = []
    for z in (0.3, 0.0, -0.5):  # lamp straight in front of the box, ever further toward the camera
        out = renderer.render([item], K_SMALL, replace(DARK, points=(PointLight((0.0, 0.0, z), (1.5,) * 3),)))
        means.append(float(out.rgb[out.instance == 1].mean()))
    assert means[0] > 1.2 * means[1] > 1.5 * means[2] > 0


def test_hemisphere_ambient_darkens_the_side_turned_from_the_sky(renderer):
    """Ambient only: with the sky straight up (image up = -y), the top of a tilted box is lit
    by the sky's ambient and its underside by the ground's."""
    R = cv2.Rodrigues(np.array([0.6, 0.0, 0.0]))[0]  # tilt: the box's top (-y) and front show
    item = RenderItem("grey_cube", R, np.array([0.0, 0.0, 0.5]))
    flat_ambient = Light(color=(0.0, 0.0, 0.0), ambient=(1.0, 1.0, 1.0), specular=0.0)
    hemi = replace(flat_ambient, ground_ambient=(0.1, 0.1, 0.1), sky=(0.0, -1.0, 0.0))
    flat, shaded = renderer.render([item], K_SMALL, flat_ambient), renderer.render([item], K_SMALL, hemi)
    on = flat.instance == 1
    assert np.ptp(flat.rgb[on].reshape(-1, 3).mean(axis=1)) < 3  # uniform ambient: one shade
    grey = shaded.rgb.astype(float).mean(axis=2)
    rows = np.nonzero(on.any(axis=1))[0]
    third = len(rows) // 3
    top, bottom = _mean_grey(grey, on, rows[:third]), _mean_grey(grey, on, rows[-third:])
    assert top > 2 * bottom
    assert grey[on].max() <= flat.rgb[on].astype(float).mean(axis=-1).max() + 1
    flipped = renderer.render([item], K_SMALL, replace(hemi, sky=(0.0, 1.0, 0.0)))
    upside_down = flipped.rgb.astype(float).mean(axis=2)
    assert _mean_grey(upside_down, on, rows[-third:]) > 1.5 * _mean_grey(upside_down, on, rows[:third])


def _mean_grey(grey: np.ndarray, on: np.ndarray, rows: np.ndarray) -> float:
    return float(grey[rows][on[rows]].mean())


def test_a_renderer_still_draws_after_another_one_was_released(renderer):
    item = RenderItem("box", np.eye(3), np.array([0.0, 0.0, 0.5]))
    before = renderer.render([item], K_SMALL).instance == 1
    other = Renderer(32, 24)  # made current on creation, then released: none is current
    other.release()
    np.testing.assert_array_equal(renderer.render([item], K_SMALL).instance == 1, before)
    assert before.sum() > 100


def test_random_light_draws_lamps_and_a_hemisphere_only_when_asked():
    plain = random_light(np.random.default_rng(3))
    assert plain.points == () and plain.ground_ambient is None
    rich = random_light(np.random.default_rng(3), point_lights=(2, 3), hemisphere=0.9)
    # the first draws are those of the plain light, so older datasets keep their lighting
    assert rich.direction == plain.direction and rich.ambient == plain.ambient
    assert 2 <= len(rich.points) <= 3 and rich.ground_ambient is not None
    assert all(g <= a for g, a in zip(rich.ground_ambient, rich.ambient, strict=True))
    assert np.linalg.norm(rich.sky) == pytest.approx(1.0)


def test_bad_inputs_raise_render_errors(renderer):
    with pytest.raises(RenderError, match="K must be"):
        gl_projection(np.eye(2), W, H, 0.1, 1.0)
    with pytest.raises(RenderError, match="unknown mesh key 'nope'"):
        renderer.render([RenderItem("nope", np.eye(3), np.zeros(3))], K_SMALL)
    with pytest.raises(RenderError, match="need finite R"):
        renderer.render([RenderItem("box", np.eye(3), np.array([0, 0, np.nan]))], K_SMALL)
    lamps = tuple(PointLight((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)) for _ in range(MAX_POINT_LIGHTS + 1))
    with pytest.raises(RenderError, match="at most 4 point lights"):
        renderer.render([RenderItem("box", np.eye(3), np.array([0, 0, 0.5]))], K_SMALL, Light(points=lamps))
    near = RenderItem("box", np.eye(3), np.array([0, 0, 0.5]))
    with pytest.raises(RenderError, match="reach_m must be positive"):
        renderer.render(
            [near], K_SMALL, Light(points=(PointLight((0.0, 0.0, 0.0), (1.0,) * 3, reach_m=0.0),))
        )
    with pytest.raises(RenderError, match="sky must be a finite non-zero"):
        renderer.render([near], K_SMALL, Light(ground_ambient=(0.1,) * 3, sky=(0.0, 0.0, 0.0)))

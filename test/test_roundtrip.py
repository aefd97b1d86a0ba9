"""Round trip of the whole geometry core, as a property over random scenes.

3D keypoints -> projection -> targets (belief maps + vector fields, of both kinds:
the paper's corner-to-centroid vectors and the corner offsets) -> decoder -> PnP
must give every pose back, for random objects, poses and intrinsics, with several
instances of several classes in one image. Same-class instances sit in distinct cells
of a 3x2 grid (they must not overlap for an exact answer); different classes overlap
freely (they have their own channels); instances in border cells may be pushed partly
out of the image. A second property adds Gaussian noise to the maps, as a network would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from hrpose_ros.geometry.camera import intrinsics_matrix, project_points
from hrpose_ros.geometry.decode import DecodeParams, Instance, decode
from hrpose_ros.geometry.keypoints import NUM_KEYPOINTS, Keypoint, cuboid_keypoints
from hrpose_ros.geometry.metrics import rotation_error_deg, translation_error
from hrpose_ros.geometry.pnp import solve_instance_pose
from hrpose_ros.geometry.targets import (
    CORNER_OFFSETS,
    TO_CENTROID,
    VECTOR_FIELDS,
    belief_maps,
    corner_offsets,
    vector_fields,
)

STRIDE = 4
GRID = (3, 2)  # cells across, down
MIN_EXAMPLES = 200
IDENTITY_TOL_PX = 1.0  # a decoded keypoint must lie this close to its own instance's projection
PARAMS = DecodeParams()


@dataclass
class Scene:
    """One image: per-class 3D keypoints, per-instance class and pose, camera."""

    wh: tuple[int, int]
    K: np.ndarray
    keypoints_3d: np.ndarray  # (C, 9, 3)
    classes: np.ndarray  # (M,)
    R: np.ndarray  # (M, 3, 3)
    t: np.ndarray  # (M, 3)

    @property
    def keypoints_2d(self) -> np.ndarray:
        """(M, 9, 2) projected keypoints, input pixels."""
        return np.stack(
            [
                project_points(self.keypoints_3d[c], R, t, self.K)
                for c, R, t in zip(self.classes, self.R, self.t, strict=True)
            ]
        )


def _place(rng: np.random.Generator, scene_wh, K, kp3, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation; depth and position so the object fills part of grid cell ``cell``."""
    w, h = scene_wh
    cw, ch = w / GRID[0], h / GRID[1]
    col, row = cell % GRID[0], cell // GRID[0]
    jitter = rng.uniform(-0.1, 0.1, 2)
    push = rng.uniform(0.0, 0.25, 2) * rng.integers(0, 2, 2)  # outward, border cells only
    jitter[0] += (col == 0) * -push[0] + (col == GRID[0] - 1) * push[0]
    jitter[1] += (row == 0) * -push[1] + (row == GRID[1] - 1) * push[1]
    u, v = ((col + 0.5 + jitter[0]) * cw, (row + 0.5 + jitter[1]) * ch)
    R = Rotation.random(random_state=rng).as_matrix()
    diagonal = np.linalg.norm(kp3[7] - kp3[0])
    z = K[0, 0] * diagonal / (rng.uniform(0.4, 0.8) * min(cw, ch))
    centre = kp3[Keypoint.CENTROID]
    t = z * np.linalg.solve(K, [u, v, 1.0]) - R @ centre
    return R, t


@st.composite
def scenes(draw) -> Scene:
    wh = draw(st.sampled_from([(640, 480), (320, 240), (480, 640), (512, 384)]))
    fx = draw(st.floats(300.0, 900.0))
    K = intrinsics_matrix(
        fx,
        fx * draw(st.floats(0.97, 1.03)),
        wh[0] / 2 + draw(st.floats(-20, 20)),
        wh[1] / 2 + draw(st.floats(-20, 20)),
    )
    per_class = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo = -rng.uniform(0.02, 0.15, (len(per_class), 3))
    kp3 = np.stack([cuboid_keypoints(a, a + rng.uniform(0.04, 0.25, 3)) for a in lo])
    classes, Rs, ts = [], [], []
    for c, n in enumerate(per_class):
        for cell in rng.choice(GRID[0] * GRID[1], size=n, replace=False):
            R, t = _place(rng, wh, K, kp3[c], int(cell))
            classes.append(c)
            Rs.append(R)
            ts.append(t)
    return Scene(wh, K, kp3, np.array(classes), np.stack(Rs), np.stack(ts))


def _decode(
    scene: Scene, noise: float = 0.0, seed: int = 0, vector_field: str = TO_CENTROID
) -> list[Instance]:
    """Targets of the scene (plus Gaussian noise of std ``noise``, like a network's output), decoded."""
    hw = (scene.wh[1] // STRIDE, scene.wh[0] // STRIDE)
    kp2 = scene.keypoints_2d
    num_classes = len(scene.keypoints_3d)
    belief = belief_maps(kp2, scene.classes, num_classes, hw, STRIDE)
    if vector_field == CORNER_OFFSETS:
        vectors = corner_offsets(kp2, scene.classes, num_classes, hw, STRIDE)
    else:
        vectors = vector_fields(kp2, scene.classes, num_classes, hw, STRIDE)
    if noise > 0:
        rng = np.random.default_rng(seed)
        belief += rng.normal(0.0, noise, belief.shape).astype(np.float32)
        vectors += rng.normal(0.0, noise, vectors.shape).astype(np.float32)
    return decode(belief, vectors, num_classes, PARAMS, STRIDE, vector_field=vector_field)


def _match(
    scene: Scene, decoded: list[Instance], tol_px: float = IDENTITY_TOL_PX
) -> list[tuple[Instance, int]]:
    """Pair each decoded instance with the same-class ground truth of nearest centroid; check identity."""
    kp2 = scene.keypoints_2d
    pairs = []
    for inst in decoded:
        same = np.flatnonzero(scene.classes == inst.class_index)
        gap = np.linalg.norm(kp2[same, Keypoint.CENTROID] - inst.keypoints[Keypoint.CENTROID], axis=1)
        m = int(same[np.argmin(gap)])
        found = np.isfinite(inst.keypoints[:, 0])
        err = np.linalg.norm(inst.keypoints[found] - kp2[m, found], axis=1)
        assert np.all(err < tol_px), (
            f"instance of class {inst.class_index} mixed with another: keypoints {np.flatnonzero(found)} "
            f"are {err.round(2)} px from ground-truth instance {m}"
        )
        pairs.append((inst, m))
    matched = sorted(m for _, m in pairs)
    assert matched == list(range(len(scene.classes))), (
        f"decoded {matched}, expected each of {len(scene.classes)}"
    )
    return pairs


def _pose_errors(scene: Scene, pairs: list[tuple[Instance, int]]) -> list[tuple[float, float]]:
    """(rotation error deg, translation error / distance) per instance."""
    out = []
    for inst, m in pairs:
        est = solve_instance_pose(inst, scene.keypoints_3d[inst.class_index], scene.K)
        assert est is not None, f"no pose for instance {m} with {inst.num_keypoints} keypoints"
        out.append(
            (
                rotation_error_deg(est.R, scene.R[m]),
                translation_error(est.t, scene.t[m]) / np.linalg.norm(scene.t[m]),
            )
        )
    return out


@pytest.mark.parametrize("vector_field", VECTOR_FIELDS)
def test_round_trip_gives_every_pose_back(vector_field: str):
    errors: list[tuple[float, float]] = []
    layouts: list[tuple[int, int]] = []

    @settings(
        max_examples=MIN_EXAMPLES + 20,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(scenes())
    def check(scene: Scene) -> None:
        pairs = _match(scene, _decode(scene, vector_field=vector_field))
        found = [inst.num_keypoints for inst, _ in pairs]
        assert min(found) >= PARAMS.min_keypoints
        errs = _pose_errors(scene, pairs)
        assert max(e[0] for e in errs) < 5.0 and max(e[1] for e in errs) < 0.05, errs
        errors.extend(errs)
        layouts.append((len(set(scene.classes.tolist())), int(np.bincount(scene.classes).max())))

    check()
    rot, trans = np.array(errors).T
    assert len(layouts) >= MIN_EXAMPLES
    several = sum(1 for n_cls, n_inst in layouts if n_cls >= 2 and n_inst >= 2)
    assert several >= MIN_EXAMPLES // 4, f"only {several} scenes with several instances of several classes"
    assert np.median(rot) < 0.5, f"median rotation error {np.median(rot):.3f} deg"
    assert np.median(trans) < 0.01, f"median translation error {np.median(trans):.4f} of the distance"


@pytest.mark.parametrize("vector_field", VECTOR_FIELDS)
def test_round_trip_survives_noisy_maps(vector_field: str):
    """Noise of std 0.02 on every belief and vector value (a well-trained network's level)."""
    errors: list[tuple[float, float]] = []

    @settings(max_examples=60, derandomize=True, database=None, deadline=None)
    @given(scenes(), st.integers(0, 2**32 - 1))
    def check(scene: Scene, seed: int) -> None:
        pairs = _match(scene, _decode(scene, noise=0.02, seed=seed, vector_field=vector_field), tol_px=2.0)
        errors.extend(_pose_errors(scene, pairs))

    check()
    rot, trans = np.array(errors).T
    assert np.median(rot) < 0.5, f"median rotation error {np.median(rot):.3f} deg"
    assert np.median(trans) < 0.01, f"median translation error {np.median(trans):.4f} of the distance"


def _two_instance_scene() -> Scene:
    rng = np.random.default_rng(11)
    K = intrinsics_matrix(600.0, 600.0, 320.0, 240.0)
    kp3 = cuboid_keypoints([-0.05, -0.04, -0.03], [0.05, 0.04, 0.09])[None]
    poses = [_place(rng, (640, 480), K, kp3[0], cell) for cell in (0, 4)]
    return Scene(
        (640, 480), K, kp3, np.array([0, 0]), np.stack([p[0] for p in poses]), np.stack([p[1] for p in poses])
    )


def test_a_correct_decoding_passes_the_checks():
    scene = _two_instance_scene()
    errs = _pose_errors(scene, _match(scene, _decode(scene)))
    assert max(e[0] for e in errs) < 0.1


@pytest.mark.parametrize("k", [Keypoint.CORNER_XMIN_YMIN_ZMIN, Keypoint.CORNER_XMAX_YMAX_ZMAX])
def test_decoding_into_another_instances_keypoint_fails_the_checks(k):
    """The assertions have teeth: one keypoint swapped between two instances is caught twice."""
    scene = _two_instance_scene()
    a, b = _decode(scene)
    a.keypoints[k], b.keypoints[k] = b.keypoints[k].copy(), a.keypoints[k].copy()
    with pytest.raises(AssertionError, match="mixed with another"):
        _match(scene, [a, b])
    pairs = [(a, int(np.argmin(np.linalg.norm(scene.keypoints_2d[:, 8] - a.keypoints[8], axis=1))))]
    rot, trans = _pose_errors(scene, pairs)[0]
    assert rot > 5.0 or trans > 0.05  # the pose check would fail as well


def test_missing_instance_fails_the_checks():
    scene = _two_instance_scene()
    with pytest.raises(AssertionError, match="expected each"):
        _match(scene, _decode(scene)[:1])


def test_scene_keypoints_have_the_documented_shape():
    assert _two_instance_scene().keypoints_2d.shape == (2, NUM_KEYPOINTS, 2)

"""Object catalogue: the shipped LM-O file, mesh-derived keypoints, overrides and validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hrpose_ros.geometry.keypoints import Keypoint, cuboid_keypoints
from hrpose_ros.geometry.objects import (
    MESH_DIR_ENV,
    Catalogue,
    CatalogueError,
    load_catalogue,
    load_mesh_points,
    mesh_diameter,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config" / "objects.yaml"
LMO_DIR = REPO.parent / "shared" / "data" / "lmo_models"
needs_lmo = pytest.mark.skipif(not (LMO_DIR / "models_info.json").is_file(), reason="LM-O meshes not present")

BOX_MM = np.array([[x, y, z] for x in (-20.0, 40.0) for y in (-10.0, 10.0) for z in (0.0, 30.0)])


def _write_ply(path: Path, vertices: np.ndarray) -> Path:
    """A minimal ASCII point-cloud PLY (project-made fixture)."""
    header = f"ply\nformat ascii 1.0\nelement vertex {len(vertices)}\n"
    header += "property float x\nproperty float y\nproperty float z\nend_header\n"
    path.write_text(header + "".join(f"{x} {y} {z}\n" for x, y, z in vertices))
    return path


def _entry(**overrides) -> dict:
    entry = {
        "name": "box",
        "id": 3,
        "bbox_min": [-0.02, -0.01, 0.0],
        "bbox_size": [0.06, 0.02, 0.03],
        "diameter": 0.07,
        "symmetric": False,
        "color": [0.1, 0.2, 0.3],
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def _write_catalogue(tmp_path: Path, entries: list[dict], **top) -> Path:
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump({"mesh_units": "mm", **top, "objects": entries}))
    return path


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(MESH_DIR_ENV, raising=False)


def test_shipped_catalogue_lists_the_eight_lmo_objects(monkeypatch, tmp_path):
    monkeypatch.setenv(MESH_DIR_ENV, str(tmp_path))  # no meshes: the cuboids must suffice
    cat = load_catalogue(SHIPPED)
    assert cat.names == ["ape", "can", "cat", "driller", "duck", "eggbox", "glue", "holepuncher"]
    assert [o.id for o in cat] == [1, 5, 6, 8, 9, 10, 11, 12]
    assert [o.name for o in cat if o.symmetric] == ["eggbox", "glue"]
    assert all(o.mesh_path is None for o in cat)
    np.testing.assert_allclose(cat.by_name("ape").bbox_size, [0.0758686, 0.0775992, 0.091769])


@needs_lmo
def test_shipped_catalogue_agrees_with_models_info():
    info = json.loads((LMO_DIR / "models_info.json").read_text())
    cat = load_catalogue(SHIPPED, mesh_dir=LMO_DIR)
    for obj in cat:
        ref = info[str(obj.id)]
        lo = np.array([ref["min_x"], ref["min_y"], ref["min_z"]]) / 1000
        size = np.array([ref["size_x"], ref["size_y"], ref["size_z"]]) / 1000
        assert obj.mesh_path is not None and obj.mesh_path.is_file()
        np.testing.assert_allclose(obj.keypoints, cuboid_keypoints(lo, lo + size), atol=1e-6)
        assert obj.diameter == pytest.approx(ref["diameter"] / 1000)
        # discrete symmetries: BOP's, translation mm -> m
        expected = [np.array(m, dtype=float).reshape(4, 4) for m in ref.get("symmetries_discrete", [])]
        for m in expected:
            m[:3, 3] /= 1000
        assert len(obj.symmetries) == len(expected)
        for got, want in zip(obj.symmetries, expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-9)


@needs_lmo
def test_mesh_points_are_in_metres_and_fill_the_box():
    obj = load_catalogue(SHIPPED, mesh_dir=LMO_DIR).by_name("ape")
    pts = obj.model_points()
    assert pts.shape[0] > 1000
    np.testing.assert_allclose(pts.min(axis=0), obj.bbox_min, atol=1e-9)
    np.testing.assert_allclose(pts.max(axis=0), obj.keypoints[Keypoint.CORNER_XMAX_YMAX_ZMAX], atol=1e-9)


def test_keypoints_come_from_the_mesh_when_no_cuboid_is_given(tmp_path):
    _write_ply(tmp_path / "box.ply", BOX_MM)
    path = _write_catalogue(tmp_path, [_entry(mesh="box.ply", bbox_min=None, bbox_size=None, diameter=None)])
    obj = load_catalogue(path, mesh_dir=tmp_path)[0]
    np.testing.assert_allclose(obj.keypoints, cuboid_keypoints([-0.02, -0.01, 0.0], [0.04, 0.01, 0.03]))
    assert obj.mesh_path == tmp_path / "box.ply"
    assert obj.diameter == pytest.approx(np.sqrt(0.06**2 + 0.02**2 + 0.03**2))  # the box diagonal


def test_relative_mesh_dir_resolves_against_the_yaml_folder(tmp_path):
    (tmp_path / "meshes").mkdir()
    _write_ply(tmp_path / "meshes" / "box.ply", BOX_MM)
    path = _write_catalogue(tmp_path, [_entry(mesh="box.ply")], mesh_dir="meshes")
    assert load_catalogue(path)[0].mesh_path == tmp_path / "meshes" / "box.ply"


def test_env_var_overrides_the_file_and_the_argument_overrides_both(tmp_path, monkeypatch):
    for sub in ("file", "env", "arg"):
        (tmp_path / sub).mkdir()
    _write_ply(tmp_path / "env" / "box.ply", BOX_MM)
    _write_ply(tmp_path / "arg" / "box.ply", BOX_MM)
    path = _write_catalogue(tmp_path, [_entry(mesh="box.ply")], mesh_dir="file")
    assert load_catalogue(path)[0].mesh_path is None  # not in the file's folder: cuboid fallback
    monkeypatch.setenv(MESH_DIR_ENV, str(tmp_path / "env"))
    assert load_catalogue(path)[0].mesh_path == tmp_path / "env" / "box.ply"
    assert load_catalogue(path, mesh_dir=tmp_path / "arg")[0].mesh_path == tmp_path / "arg" / "box.ply"


def test_mesh_that_disagrees_with_its_cuboid_is_an_error(tmp_path):
    _write_ply(tmp_path / "box.ply", BOX_MM * 1.1)
    path = _write_catalogue(tmp_path, [_entry(mesh="box.ply")])
    with pytest.raises(CatalogueError, match=r"'box'.*'mesh'.*bounding box"):
        load_catalogue(path, mesh_dir=tmp_path)


def test_missing_mesh_without_cuboid_is_an_error_naming_the_entry(tmp_path):
    path = _write_catalogue(tmp_path, [_entry(mesh="nowhere.ply", bbox_min=None, bbox_size=None)])
    with pytest.raises(CatalogueError, match=r"'box'.*'mesh'.*not found"):
        load_catalogue(path, mesh_dir=tmp_path)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"symmetric": None}, "symmetric"),
        ({"color": None}, "color"),
        ({"bbox_size": [0.1, -0.02, 0.03]}, "bbox_size"),
        ({"bbox_size": [0.1, 0.02]}, "bbox_size"),
        ({"color": [1.0, 0.5, 2.0]}, "color"),
        ({"color": "red"}, "color"),
        ({"symmetric": "yes"}, "symmetric"),
        ({"id": -1}, "id"),
        ({"id": True}, "id"),
        ({"name": "bad name"}, "name"),
        ({"diameter": -0.1}, "diameter"),
        ({"colour": [0, 0, 0]}, "colour"),
        ({"bbox_min": None}, "bbox_min"),
        ({"symmetries": [[1, 0, 0]]}, "symmetries"),
        ({"symmetries": [[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]]}, "symmetries"),  # not symmetric
        ({"symmetric": True, "symmetries": [[2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]]}, "symmetries"),
        ({"symmetric": True, "symmetries": "half turn"}, "symmetries"),
    ],
)
def test_bad_entries_raise_catalogue_error_naming_entry_and_field(tmp_path, overrides, field):
    path = _write_catalogue(tmp_path, [_entry(name="good", id=1), _entry(**overrides)])
    with pytest.raises(CatalogueError, match=rf"entry '(box|bad name)', field '{field}'"):
        load_catalogue(path)


@pytest.mark.parametrize(("second", "field"), [({"id": 9}, "name"), ({"name": "other"}, "id")])
def test_duplicate_names_and_ids_are_errors(tmp_path, second, field):
    path = _write_catalogue(tmp_path, [_entry(), _entry(**second)])
    with pytest.raises(CatalogueError, match=rf"duplicate object {field}"):
        load_catalogue(path)


def test_bad_top_level_is_an_error(tmp_path):
    path = tmp_path / "objects.yaml"
    path.write_text("objects: 3\n")
    with pytest.raises(CatalogueError, match="objects"):
        load_catalogue(path)
    with pytest.raises(CatalogueError, match="mesh_units"):
        load_catalogue(_write_catalogue(tmp_path, [_entry()], mesh_units="inch"))


def test_catalogue_lookups(tmp_path):
    cat = load_catalogue(_write_catalogue(tmp_path, [_entry(name="a", id=4), _entry(name="b", id=7)]))
    assert cat.index_of("b") == 1 and cat.by_name("a").id == 4 and cat.by_id(7).name == "b"
    assert cat.select(["b", "a"]).names == ["b", "a"]
    assert cat.keypoints_3d().shape == (2, 9, 3) and len(cat) == 2
    with pytest.raises(KeyError, match="known classes"):
        cat.index_of("c")
    with pytest.raises(KeyError):
        cat.by_id(5)


def test_catalogue_rejects_duplicates_when_built_directly(tmp_path):
    obj = load_catalogue(_write_catalogue(tmp_path, [_entry()]))[0]
    with pytest.raises(CatalogueError, match="duplicate"):
        Catalogue([obj, obj])


def test_object_keypoints_are_read_only(tmp_path):
    obj = load_catalogue(_write_catalogue(tmp_path, [_entry()]))[0]
    with pytest.raises(ValueError, match="read-only"):
        obj.keypoints[0, 0] = 1.0


def test_load_mesh_points_converts_units(tmp_path):
    ply = _write_ply(tmp_path / "box.ply", BOX_MM)
    np.testing.assert_allclose(load_mesh_points(ply, "mm"), BOX_MM / 1000)
    np.testing.assert_allclose(load_mesh_points(ply, "m"), BOX_MM)
    with pytest.raises(FileNotFoundError):
        load_mesh_points(tmp_path / "missing.ply")


def test_mesh_diameter_by_hand():
    assert mesh_diameter(BOX_MM) == pytest.approx(np.sqrt(60**2 + 20**2 + 30**2))

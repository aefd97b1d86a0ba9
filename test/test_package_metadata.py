"""package.xml, setup.py and setup.cfg describe a package that colcon and pip both accept."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

import hrpose_ros

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hrpose_ros"
REQUIRED_ROS_DEPENDS = {
    "rclpy",
    "sensor_msgs",
    "geometry_msgs",
    "tf2_ros",
    "visualization_msgs",
    "vision_msgs",
    "cv_bridge",
}


def _load_script(name: str):
    """Import scripts/<name>.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_hrpose_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SETUP = _load_script("link_data_files").setup_arguments(ROOT)
CONSOLE_SCRIPTS = SETUP["entry_points"]["console_scripts"]


def _package_xml() -> ET.Element:
    return ET.parse(ROOT / "package.xml").getroot()


def _installed(destination: str) -> set[str]:
    """Source paths that setup.py installs into `destination`."""
    return {source for dest, sources in SETUP["data_files"] if dest == destination for source in sources}


def test_package_xml_is_format_3_ament_python():
    root = _package_xml()
    assert root.tag == "package"
    assert root.get("format") == "3"
    assert root.findtext("name") == PACKAGE
    assert root.findtext("export/build_type") == "ament_python"


def test_package_xml_declares_the_ros_dependencies():
    root = _package_xml()
    declared = {element.text for tag in ("depend", "exec_depend") for element in root.findall(tag)}
    assert declared >= REQUIRED_ROS_DEPENDS, f"missing: {sorted(REQUIRED_ROS_DEPENDS - declared)}"


def test_versions_agree_between_package_xml_setup_py_and_the_module():
    assert _package_xml().findtext("version") == SETUP["version"] == hrpose_ros.__version__


def test_setup_py_installs_the_ament_index_marker_and_package_xml():
    assert (ROOT / "resource" / PACKAGE).is_file()
    assert f"resource/{PACKAGE}" in _installed("share/ament_index/resource_index/packages")
    assert "package.xml" in _installed(f"share/{PACKAGE}")


@pytest.mark.parametrize(
    ("directory", "patterns"),
    [("launch", ["*.launch.py"]), ("config", ["*.yaml", "*.rviz"]), ("models", ["*.onnx", "*.json"])],
)
def test_setup_py_installs_every_file_of(directory, patterns):
    destination = f"share/{PACKAGE}/{directory}"
    assert destination in {dest for dest, _ in SETUP["data_files"]}, f"{directory}/ is not installed"
    present = {
        path.relative_to(ROOT).as_posix() for pattern in patterns for path in (ROOT / directory).glob(pattern)
    }
    assert present <= _installed(destination), f"not installed: {sorted(present - _installed(destination))}"


def test_setup_cfg_puts_console_scripts_where_ros2_launch_looks():
    text = (ROOT / "setup.cfg").read_text()
    assert f"script_dir=$base/lib/{PACKAGE}" in text.replace(" ", "")
    assert f"install_scripts=$base/lib/{PACKAGE}" in text.replace(" ", "")


def test_setup_py_declares_the_node_entry_point():
    names = {entry.split("=")[0].strip() for entry in CONSOLE_SCRIPTS}
    assert "hrpose_node" in names


@pytest.mark.parametrize("entry", CONSOLE_SCRIPTS, ids=[e.split("=")[0].strip() for e in CONSOLE_SCRIPTS])
def test_console_script_resolves_to_a_callable(entry):
    name, target = (part.strip() for part in entry.split("="))
    module_name, _, attribute = target.partition(":")
    if importlib.util.find_spec(module_name) is None:
        pytest.skip(f"{name}: module {module_name} does not exist yet")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute, None)), f"{name}: {target} is not a callable"


_NOT_PROJECT_FILES = {
    ".git",
    ".venv",
    "build",
    "install",
    "log",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}


def _project_files() -> list[Path]:
    """The files a fresh clone has: git's tracked + untracked-but-not-ignored files
    (outside a git checkout: every file but virtual environments and build outputs)."""
    result = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if result.returncode == 0:
        return [
            ROOT / name for name in result.stdout.decode().split("\0") if name and (ROOT / name).is_file()
        ]
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file()
        and not _NOT_PROJECT_FILES.intersection(path.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]


@pytest.mark.slow
def test_pip_builds_a_wheel_with_the_share_files_and_console_scripts(tmp_path):
    source = tmp_path / "src"
    for path in _project_files():
        target = source / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob(f"{PACKAGE}-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"{PACKAGE}-{SETUP['version']}.data/data"
    assert f"{data}/share/ament_index/resource_index/packages/{PACKAGE}" in names
    assert f"{data}/share/{PACKAGE}/package.xml" in names
    assert f"{data}/share/{PACKAGE}/launch/pose.launch.py" in names
    assert f"{PACKAGE}/geometry/keypoints.py" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{PACKAGE}-{SETUP['version']}.dist-info/entry_points.txt")
    assert b"hrpose_node = hrpose_ros.ros.node:main" in entry_points


@pytest.mark.slow
def test_colcon_build_installs_console_scripts_into_lib_package():
    if not (Path(sys.prefix) / "bin" / "colcon").is_file():
        pytest.skip("colcon is not installed in this Python environment (make setup installs it)")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "colcon_check.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "VENV": sys.prefix},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stderr

"""The set-up tooling: requirement pins, data-file links, and `make setup` idempotency."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_script(name: str):
    """Import scripts/<name>.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_hrpose_scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


requirements = _load_script("requirements_satisfied")
links = _load_script("link_data_files")


def test_requirements_txt_pins_every_line_including_pip_and_the_ros_wheels():
    pins = requirements.parse_pins(ROOT / "requirements.txt")
    for name in ("pip", "setuptools", "numpy", "torch", "torchvision", "ros-rclpy", "ros-rmw-fastrtps-cpp"):
        assert name in pins, name
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"


def test_parse_pins_names_the_line_that_is_not_a_pin(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\nnumpy==2.4.6\n\nscipy>=1.0  # a range\n")
    with pytest.raises(requirements.RequirementsFormatError, match=r"requirements\.txt:4: .*scipy>=1\.0"):
        requirements.parse_pins(path)


def test_parse_pins_normalises_names_and_ignores_comments(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("Ros_RCLpy==9.1.2  # wheel\n# pytest==1.0\n")
    assert requirements.parse_pins(path) == {"ros-rclpy": "9.1.2"}


def test_unsatisfied_reports_missing_and_wrong_versions_only():
    have = metadata.version("pytest")
    problems = requirements.unsatisfied(
        {"pytest": have, "hypothesis": "0.0.1", "surely-not-a-real-distribution-hrpose": "1.0"}
    )
    assert problems == [
        "hypothesis: " + metadata.version("hypothesis") + " installed, want 0.0.1",
        "surely-not-a-real-distribution-hrpose: not installed (want 1.0)",
    ]


def test_unsatisfied_accepts_a_local_version_label():
    torch_version = metadata.version("torch")  # e.g. 2.14.1+cu130
    assert requirements.unsatisfied({"torch": torch_version.split("+")[0]}) == []


def test_link_data_files_links_every_data_file_and_a_second_run_changes_nothing(tmp_path):
    entries = links.data_files(ROOT)
    expected = sum(len(sources) for _, sources in entries)
    assert links.link_data_files(ROOT, tmp_path, entries, dry_run=True) == expected
    assert not (tmp_path / "share").exists()  # a dry run creates nothing

    assert links.link_data_files(ROOT, tmp_path, entries) == expected
    package_xml = tmp_path / "share" / "hrpose_ros" / "package.xml"
    assert package_xml.is_symlink()
    assert package_xml.resolve() == (ROOT / "package.xml").resolve()
    assert (tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "hrpose_ros").exists()
    assert links.link_data_files(ROOT, tmp_path, entries) == 0


def test_link_data_files_removes_links_to_files_no_longer_listed(tmp_path):
    entries = links.data_files(ROOT)
    links.link_data_files(ROOT, tmp_path, entries)
    stale = tmp_path / "share" / "hrpose_ros" / "config" / "renamed.yaml"
    stale.symlink_to(ROOT / "config" / "renamed.yaml")
    foreign = tmp_path / "share" / "hrpose_ros" / "config" / "user.yaml"
    foreign.write_text("kept: true\n")  # not a link into the checkout: left alone

    assert links.link_data_files(ROOT, tmp_path, entries) == 1
    assert not stale.is_symlink()
    assert foreign.read_text() == "kept: true\n"


@pytest.mark.slow
def test_setup_is_complete_and_a_second_run_would_change_nothing():
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("tests do not run in this checkout's .venv (not a `make setup` environment)")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup_env.sh"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "HRPOSE_VENV": sys.prefix},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--check: nothing to do" in result.stderr

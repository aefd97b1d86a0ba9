"""The layer rules of docs/architecture.md, checked on the source and at import time.

- geometry core: never rclpy, torch, timm or cv_bridge (anywhere, lazily neither); its
  module-level imports are numpy, cv2, yaml, the standard library and itself only.
- runtime: never rclpy or the ROS adapter; torch only inside functions, except in
  runtime/backends/torch_backend.py, which alone may import the training package (the
  network's definition lives there).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hrpose_ros"
GEOMETRY = PACKAGE / "geometry"
RUNTIME = PACKAGE / "runtime"
TORCH_BACKEND = RUNTIME / "backends" / "torch_backend.py"

FORBIDDEN_IN_GEOMETRY = {"rclpy", "torch", "timm", "cv_bridge", "torchvision", "tensorrt", "onnxruntime"}
ALLOWED_THIRD_PARTY_IN_GEOMETRY = {"numpy", "cv2", "yaml"}
ROS_ADAPTER_MODULES = {"hrpose_ros.ros.node", "hrpose_ros.ros.player", "hrpose_ros.ros.ros_messages"}


def _modules(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module_level_only: bool = False) -> list[tuple[str, int]]:
    """Absolute names of everything the module at `path` imports, with line numbers."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return _imports_in_source(path.read_text(), package, module_level_only)


def _imports_in_source(source: str, package: str, module_level_only: bool = False) -> list[tuple[str, int]]:
    """Absolute names imported by `source`, a module of `package` (for relative imports).

    With `module_level_only`, imports inside functions and under `if TYPE_CHECKING:` are
    left out: they do not run when the module is imported.
    """
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if module_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for statement in child.orelse:
                    visit(ast.Module(body=[statement], type_ignores=[]))
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join([*parts, child.module] if child.module else parts)
                else:
                    base = child.module or ""
                found.append((base, child.lineno))
                found.extend((f"{base}.{alias.name}", child.lineno) for alias in child.names)
            visit(child)

    visit(ast.parse(source))
    return found


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _violations(paths: list[Path], bad, module_level_only: bool = False) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in paths
        for name, line in _imports(path, module_level_only)
        if bad(name)
    ]


def test_geometry_modules_exist():
    assert (GEOMETRY / "__init__.py").is_file()
    assert len(_modules(GEOMETRY)) > 1


def test_geometry_never_imports_ros_or_deep_learning_libraries():
    problems = _violations(_modules(GEOMETRY), lambda name: _top(name) in FORBIDDEN_IN_GEOMETRY)
    assert not problems, "geometry core must stay numpy/cv2 only:\n" + "\n".join(problems)


def test_importing_geometry_needs_only_numpy_cv2_yaml_and_the_standard_library():
    allowed = ALLOWED_THIRD_PARTY_IN_GEOMETRY | set(sys.stdlib_module_names) | {"__future__"}

    def bad(name: str) -> bool:
        if name.startswith("hrpose_ros."):
            return not name.startswith("hrpose_ros.geometry")
        return _top(name) not in allowed and name != "hrpose_ros"

    problems = _violations(_modules(GEOMETRY), bad, module_level_only=True)
    assert not problems, "geometry core imports outside numpy/cv2/yaml/stdlib:\n" + "\n".join(problems)


def test_runtime_never_imports_rclpy():
    problems = _violations(_modules(RUNTIME), lambda name: _top(name) in {"rclpy", "cv_bridge"})
    assert not problems, "runtime must not depend on ROS:\n" + "\n".join(problems)


def test_runtime_imports_torch_only_lazily_outside_the_torch_backend():
    paths = [path for path in _modules(RUNTIME) if path != TORCH_BACKEND]
    problems = _violations(paths, lambda name: _top(name) in {"torch", "torchvision", "timm"}, True)
    assert not problems, "torch at module level in the runtime:\n" + "\n".join(problems)


def test_runtime_never_imports_the_ros_adapter():
    def bad(name: str) -> bool:
        return any(name == module or name.startswith(module + ".") for module in ROS_ADAPTER_MODULES)

    problems = _violations(_modules(RUNTIME), bad)
    assert not problems, "runtime depends on the ROS adapter:\n" + "\n".join(problems)


def test_runtime_imports_training_only_in_the_torch_backend():
    paths = [path for path in _modules(RUNTIME) if path != TORCH_BACKEND]
    problems = _violations(paths, lambda name: name.startswith("hrpose_ros.training"))
    assert not problems, "runtime (besides the torch backend) imports training:\n" + "\n".join(problems)


def test_the_import_checker_sees_nested_relative_and_lazy_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import keypoints\n"
        "from ..runtime import bundle\n"
        "if True:\n    import torch.nn\n"
        "if TYPE_CHECKING:\n    import timm\n"
        "def f():\n    import rclpy\n"
    )
    everything = {name for name, _ in _imports_in_source(source, "hrpose_ros.geometry")}
    assert {
        "hrpose_ros.geometry.keypoints",
        "hrpose_ros.runtime.bundle",
        "torch.nn",
        "timm",
        "rclpy",
    } <= everything
    module_level = {name for name, _ in _imports_in_source(source, "hrpose_ros.geometry", True)}
    assert "torch.nn" in module_level
    assert "rclpy" not in module_level
    assert "timm" not in module_level


def _loaded_after_import(modules: list[str]) -> dict[str, list[str]]:
    """Import `modules` in a fresh interpreter; report which heavy libraries got loaded."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = ('torch', 'rclpy', 'timm', 'cv_bridge', 'tensorrt')\n"
        "print(json.dumps({h: sorted(m for m in sys.modules if m == h or m.startswith(h + '.'))[:3]"
        " for h in heavy}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_the_geometry_core_loads_neither_torch_nor_rclpy():
    modules = [_module_name(path) for path in _modules(GEOMETRY)]
    loaded = _loaded_after_import(modules)
    assert loaded["torch"] == [], loaded
    assert loaded["rclpy"] == [], loaded
    assert loaded["cv_bridge"] == [], loaded


@pytest.mark.slow
def test_importing_the_runtime_loads_neither_torch_nor_rclpy():
    if not (RUNTIME / "__init__.py").is_file():
        pytest.skip("hrpose_ros/runtime has no __init__.py yet")
    modules = [_module_name(path) for path in _modules(RUNTIME) if path != TORCH_BACKEND]
    loaded = _loaded_after_import(modules)
    assert loaded["torch"] == [], loaded
    assert loaded["rclpy"] == [], loaded


_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError, as on a deployment machine
import cv2
from hrpose_ros.runtime.backends import create_backend
from hrpose_ros.runtime.bundle import load_bundle
from hrpose_ros.runtime.estimator import Estimator
from hrpose_ros.data.bop import read_dataset
import hrpose_ros.ros.demo, hrpose_ros.ros.node, hrpose_ros.ros.player  # the ROS side needs no torch either
bundle = load_bundle(sys.argv[1])
estimator = Estimator(bundle, create_backend("onnxruntime", bundle, threads=1))
image = read_dataset(sys.argv[2])[0]
detections = estimator(cv2.imread(str(image.rgb_path)), image.K, encoding="bgr8")
print("detections", len(detections))
"""


@pytest.mark.slow
def test_node_and_onnxruntime_estimator_run_where_torch_cannot_be_imported():
    fixture = ROOT / "test" / "data"
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, str(fixture / "fixture_model" / "fixture.json"),
         str(fixture / "fixture_stream")],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 0, result.stdout  # the fixture model finds objects there

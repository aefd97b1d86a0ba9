"""The layer rules of docs/architecture.md, checked on the source and at import time.

Every folder of ``hrpose_ros/`` is one layer with one rule (``LAYERS`` below): which
other folders of the package it may import, and which third-party libraries it must
never import, at module level or inside a function. The rules are checked by parsing
every import statement of every module (``ast``), never by grepping; a folder without a
rule, or a module directly in ``hrpose_ros/`` besides ``__init__.py``, fails too.
Import-time checks then import each layer in a fresh interpreter (what a static check
cannot see: imports by name through importlib) and run the node's estimator, the
player and the demo's scoring with torch imports blocked.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hrpose_ros"
GEOMETRY = PACKAGE / "geometry"
RUNTIME = PACKAGE / "runtime"
TORCH_BACKEND = RUNTIME / "backends" / "torch_backend.py"

ROS = frozenset(
    {
        "rclpy",
        "rcl_interfaces",
        "builtin_interfaces",
        "std_msgs",
        "sensor_msgs",
        "geometry_msgs",
        "vision_msgs",
        "visualization_msgs",
        "diagnostic_msgs",
        "tf2_msgs",
        "tf2_ros",
        "cv_bridge",
        "message_filters",
        "launch",
        "launch_ros",
    }
)
"""rclpy and the ROS message / launch packages: only ros/ imports them."""
TORCH = frozenset({"torch", "torchvision", "timm"})
INFERENCE = frozenset({"onnxruntime", "tensorrt", "cuda"})
"""The runtime's inference libraries (cuda: cuda-python), behind its backends."""
RENDERER = frozenset({"moderngl"})

ALLOWED_THIRD_PARTY_IN_GEOMETRY = {"numpy", "cv2", "yaml"}


@dataclass(frozen=True)
class Layer:
    """One folder's rule: the package folders it may import and the libraries it may not."""

    may_import: frozenset[str]
    """Other folders of hrpose_ros (its own is always allowed; so is ``hrpose_ros`` itself)."""
    forbidden: frozenset[str]
    """Top-level third-party modules it never imports, not even inside a function."""
    lazy_exceptions: dict[str, frozenset[str]] = field(default_factory=dict)
    """Module (path in the folder) -> extra folders / libraries it may import inside functions only."""


LAYERS: dict[str, Layer] = {
    "geometry": Layer(frozenset(), ROS | TORCH | INFERENCE | RENDERER),
    "data": Layer(frozenset({"geometry"}), ROS | TORCH | INFERENCE),
    "network": Layer(frozenset({"geometry"}), ROS | INFERENCE | RENDERER),
    "runtime": Layer(
        frozenset({"geometry"}),
        ROS | TORCH | RENDERER,
        {"backends/torch_backend.py": frozenset({"network", *TORCH})},
    ),
    "evaluation": Layer(frozenset({"geometry", "data", "runtime"}), ROS | TORCH | INFERENCE | RENDERER),
    "training": Layer(frozenset({"geometry", "data", "evaluation", "network", "runtime"}), ROS),
    "ros": Layer(frozenset({"geometry", "data", "evaluation", "runtime"}), TORCH | INFERENCE | RENDERER),
}
"""docs/architecture.md's table. Sub-folders (runtime/backends/) follow their folder's rule."""

PACKAGE_ROOT_RULE = Layer(frozenset(), ROS | TORCH | INFERENCE | RENDERER)
"""hrpose_ros/__init__.py: imports no layer, so ``import hrpose_ros`` stays free."""


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


def _layer_of(path: Path) -> str | None:
    """The folder (layer) of a module of hrpose_ros; None for a module at the package root."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _layer_violations(path: Path, source: str | None = None) -> list[str]:
    """Every import of the module at ``path`` that its folder's rule forbids.

    ``source`` replaces the file's text (to test the checker on a planted import).
    """
    layer = _layer_of(path)
    rule = PACKAGE_ROOT_RULE if layer is None else LAYERS.get(layer)
    where = f"{layer}/" if layer else "hrpose_ros/__init__.py"
    if rule is None:
        return [f"{path.relative_to(ROOT)}: folder {layer}/ has no rule in LAYERS"]
    if source is None:
        source = path.read_text()
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    in_folder = path.relative_to(PACKAGE / layer).as_posix() if layer else path.name
    lazy_extra = rule.lazy_exceptions.get(in_folder, frozenset())
    module_level = set(_imports_in_source(source, package, module_level_only=True))
    problems = []
    seen: set[tuple[int, str]] = set()  # one line per statement and folder (not per imported name)
    for imported, line in _imports_in_source(source, package):
        parts = imported.split(".")
        at = f"{path.relative_to(ROOT)}:{line}: imports {imported}"
        if parts[0] == "hrpose_ros":
            if len(parts) == 1 or (line, parts[1]) in seen:
                continue  # the package itself (its __init__ imports no layer), or said already
            target = parts[1]
            seen.add((line, target))
            if target not in LAYERS:
                if (PACKAGE / target).is_dir() or (PACKAGE / f"{target}.py").is_file():
                    problems.append(f"{at}, which is in no layer")
                continue  # `from hrpose_ros.x import name`: the name, not a module
            if target == layer or target in rule.may_import:
                continue
            if target in lazy_extra:
                if (imported, line) in module_level:
                    problems.append(f"{at} at module level ({in_folder} may import it inside functions only)")
                continue
            folders = ", ".join(sorted(f"{x}/" for x in rule.may_import)) or "no other folder"
            problems.append(f"{at} ({where} may import {folders})")
        elif parts[0] in lazy_extra:
            if (imported, line) in module_level:
                problems.append(f"{at} at module level ({in_folder} may import it inside functions only)")
        elif parts[0] in rule.forbidden:
            problems.append(f"{at} ({where} never imports {parts[0]})")
    return problems


def test_every_folder_of_the_package_has_a_rule():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS), (
        f"folders without a rule in LAYERS: {sorted(folders - set(LAYERS))}; "
        f"rules without a folder: {sorted(set(LAYERS) - folders)}"
    )


def test_every_layer_is_a_package_with_modules():
    for folder in LAYERS:
        assert (PACKAGE / folder / "__init__.py").is_file(), folder
        assert len(_modules(PACKAGE / folder)) > 1, folder


def test_no_module_sits_directly_in_the_package_root():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]


def test_every_folder_with_modules_is_a_package():
    """find_packages (setup.py, colcon) ships only folders with an __init__.py."""
    folders = {path.parent for path in _modules(PACKAGE)}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"folders without __init__.py (setup.py would not install them): {missing}"


def test_the_layer_rules_name_only_existing_folders_and_modules():
    for name, rule in LAYERS.items():
        assert rule.may_import <= set(LAYERS), name
        assert name not in rule.may_import, name
        for module in rule.lazy_exceptions:
            assert (PACKAGE / name / module).is_file(), f"{name}/{module}"


def test_every_module_follows_its_folders_rule():
    paths = _modules(PACKAGE)
    assert len(paths) > len(LAYERS)
    problems = [problem for path in paths for problem in _layer_violations(path)]
    assert not problems, "imports that break the layer rules of docs/architecture.md:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("ros/node.py", "def f():\n    import torch\n", "ros/ never imports torch"),
        ("ros/player.py", "from hrpose_ros.training.train import run\n", "imports hrpose_ros.training.train"),
        ("ros/demo.py", "from hrpose_ros.network import model\n", "imports hrpose_ros.network"),
        (
            "runtime/estimator.py",
            "from ..network.model import OUTPUT_STRIDE\n",
            "imports hrpose_ros.network.model",
        ),
        ("runtime/bundle.py", "def f():\n    import torch\n", "runtime/ never imports torch"),
        ("runtime/backends/torch_backend.py", "import torch\n", "inside functions only"),
        ("runtime/backends/torch_backend.py", "from ...network import model\n", "inside functions only"),
        ("runtime/backends/torch_backend.py", "from hrpose_ros.training import checkpoint\n", "training"),
        ("evaluation/scoring.py", "import timm\n", "evaluation/ never imports timm"),
        ("data/bop.py", "from hrpose_ros.evaluation import results\n", "imports hrpose_ros.evaluation"),
        ("training/train.py", "import rclpy.node\n", "training/ never imports rclpy"),
        ("network/model.py", "from hrpose_ros.data.bop import read_dataset\n", "imports hrpose_ros.data.bop"),
        ("geometry/pnp.py", "from hrpose_ros.runtime import bundle\n", "imports hrpose_ros.runtime"),
        ("__init__.py", "from hrpose_ros.ros import node\n", "imports hrpose_ros.ros"),
    ],
)
def test_the_layer_check_catches_a_planted_import(module, source, expected):
    problems = _layer_violations(PACKAGE / module, source)
    assert any(expected in problem for problem in problems), problems


def test_the_layer_check_allows_the_torch_backends_lazy_network_import():
    source = "def load():\n    import torch\n    from hrpose_ros.network.checkpoint import load_checkpoint\n"
    assert _layer_violations(TORCH_BACKEND, source) == []


def test_the_layer_check_flags_an_unknown_folder():
    source = "from hrpose_ros.training import train\n"
    problems = _layer_violations(PACKAGE / "newlayer" / "thing.py", source)
    assert problems == ["hrpose_ros/newlayer/thing.py: folder newlayer/ has no rule in LAYERS"]


def test_importing_geometry_needs_only_numpy_cv2_yaml_and_the_standard_library():
    allowed = ALLOWED_THIRD_PARTY_IN_GEOMETRY | set(sys.stdlib_module_names) | {"__future__"}

    def bad(name: str) -> bool:
        if name.startswith("hrpose_ros."):
            return not name.startswith("hrpose_ros.geometry")
        return _top(name) not in allowed and name != "hrpose_ros"

    problems = _violations(_modules(GEOMETRY), bad, module_level_only=True)
    assert not problems, "geometry core imports outside numpy/cv2/yaml/stdlib:\n" + "\n".join(problems)


def test_readme_and_architecture_name_every_folder():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :].split("\n## ", 1)[0]
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for folder in LAYERS:
        assert f"{folder}/" in layout, f"README's Layout section does not name {folder}/"
        assert f"hrpose_ros/{folder}/" in architecture, f"docs/architecture.md does not name {folder}/"


def _architecture_layers_section() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return text[text.index("## Layers") : text.index("## Conventions")]


def test_architecture_diagram_names_every_module():
    diagram = _architecture_layers_section().split("```")[1]
    missing = [
        str(path.relative_to(PACKAGE))
        for path in _modules(PACKAGE)
        if path.name != "__init__.py" and not re.search(rf"\b{path.stem}\b", diagram)
    ]
    assert not missing, f"modules missing from the layer diagram of docs/architecture.md: {missing}"


def test_architecture_states_the_rules_of_this_test():
    """The diagram's arrows and the table's "may import" column are LAYERS' may_import."""
    section = _architecture_layers_section()
    expected = {name: set(rule.may_import) for name, rule in LAYERS.items()}
    arrows = {
        match[1]: set(re.findall(r"(\w+)/", match[2].split("(")[0]))
        for match in re.finditer(r"^hrpose_ros/(\w+)/\s+->(.*)$", section.split("```")[1], re.MULTILINE)
    }
    assert arrows == expected
    table = {
        match[1]: set(re.findall(r"`(\w+)/`", match[2].split(";")[0]))
        for match in re.finditer(r"^\| `(\w+)/` \|([^|]*)\|", section, re.MULTILINE)
    }
    assert table == expected


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


TORCH_FREE_LAYERS = ("geometry", "data", "evaluation", "runtime", "ros")


@pytest.mark.slow
@pytest.mark.parametrize("layer", TORCH_FREE_LAYERS)
def test_importing_a_torch_free_layer_loads_no_torch(layer):
    """Every module of the layer (the runtime's torch backend aside) in one fresh interpreter."""
    modules = [_module_name(path) for path in _modules(PACKAGE / layer) if path != TORCH_BACKEND]
    loaded = _loaded_after_import(modules)
    assert loaded["torch"] == [], loaded
    assert loaded["timm"] == [], loaded
    if layer != "ros":
        assert loaded["rclpy"] == [], loaded
        assert loaded["cv_bridge"] == [], loaded


_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError, as on a deployment machine
import cv2
from hrpose_ros.data.bop import read_dataset
from hrpose_ros.evaluation.runner import evaluate
from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.runtime.backends import create_backend
from hrpose_ros.runtime.bundle import load_bundle, select_for_bundle
from hrpose_ros.runtime.estimator import Estimator
import hrpose_ros.ros.demo, hrpose_ros.ros.node, hrpose_ros.ros.player  # the ROS side needs no torch either
bundle = load_bundle(sys.argv[1])
estimator = Estimator(bundle, create_backend("onnxruntime", bundle, threads=1))
images = read_dataset(sys.argv[2])
catalogue = select_for_bundle(bundle, load_catalogue(sys.argv[3]))
result = evaluate(estimator, images, catalogue, progress=False)  # the demo's and hrpose-eval's scoring
print("scored", len(result.instances))
detections = estimator(cv2.imread(str(images[0].rgb_path)), images[0].K, encoding="bgr8")
print("detections", len(detections))
"""


@pytest.mark.slow
def test_node_estimator_and_evaluation_run_where_torch_cannot_be_imported():
    fixture = ROOT / "test" / "data"
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, str(fixture / "fixture_model" / "fixture.json"),
         str(fixture / "fixture_stream"), str(ROOT / "config" / "objects.yaml")],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 0, result.stdout  # the fixture model finds objects there
    assert int(result.stdout.split()[-3]) > 0, result.stdout  # and every ground-truth instance is scored

"""launch/pose.launch.py: valid Python building a LaunchDescription with the standard API."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from hrpose_ros.ros.node_params import PARAM_SPECS

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "pose.launch.py"
EXPECTED_ARGUMENTS = {
    "image_topic",
    "camera_info_topic",
    "namespace",
    "params_file",
    "model",
    "backend",
    "use_rviz",
}
HAVE_LAUNCH = (
    importlib.util.find_spec("launch") is not None and importlib.util.find_spec("launch_ros") is not None
)


def _tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def _calls(name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(_tree())
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
    ]


def _keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _declared() -> dict[str, dict[str, ast.expr]]:
    out = {}
    for call in _calls("DeclareLaunchArgument"):
        name = ast.literal_eval(call.args[0])
        out[name] = _keywords(call)
    return out


def test_launch_file_has_a_docstring_and_generate_function():
    tree = _tree()
    assert ast.get_docstring(tree)
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in functions


def test_every_expected_argument_is_declared_once_with_default_and_description():
    calls = _calls("DeclareLaunchArgument")
    names = [ast.literal_eval(c.args[0]) for c in calls]
    assert sorted(names) == sorted(EXPECTED_ARGUMENTS)
    for name, kw in _declared().items():
        assert "default_value" in kw, name
        description = ast.literal_eval(kw["description"])
        assert isinstance(description, str) and description.strip(), name


def test_backend_default_agrees_with_the_node_parameter():
    default = ast.literal_eval(_declared()["backend"]["default_value"])
    assert default == next(s.default for s in PARAM_SPECS if s.name == "backend")


def test_node_gets_params_file_then_overrides_and_topic_remappings():
    nodes = [c for c in _calls("Node") if ast.literal_eval(_keywords(c)["executable"]) == "hrpose_node"]
    assert len(nodes) == 1
    kw = _keywords(nodes[0])
    params = kw["parameters"]
    assert isinstance(params, ast.List) and len(params.elts) == 2
    assert isinstance(params.elts[1], ast.Dict)
    override_keys = {ast.literal_eval(k) for k in params.elts[1].keys}
    assert override_keys == {"model", "backend"}
    remapped = {ast.literal_eval(t.elts[0]) for t in kw["remappings"].elts}
    assert remapped == {"image", "camera_info"}


def test_rviz_is_conditioned_on_use_rviz_and_uses_the_package_config():
    rviz = [c for c in _calls("Node") if ast.literal_eval(_keywords(c)["executable"]) == "rviz2"]
    assert len(rviz) == 1
    assert "condition" in _keywords(rviz[0])
    assert "hrpose.rviz" in ast.unparse(rviz[0])
    assert (LAUNCH_FILE.parents[1] / "config" / "hrpose.rviz").is_file()


@pytest.mark.skipif(
    not HAVE_LAUNCH, reason="launch / launch_ros are not installed (not on PyPI); AST checks ran"
)
def test_generate_launch_description_runs():
    from launch import LaunchDescription  # noqa: PLC0415 (optional package)

    spec = importlib.util.spec_from_file_location("pose_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    assert {a.name for a in description.get_launch_arguments()} == EXPECTED_ARGUMENTS

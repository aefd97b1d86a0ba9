"""Backend registry and the ONNX Runtime backend (real ONNX graph, CPU)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from runtime_fixtures import make_bundle

from hrpose_ros.runtime.backends import BACKEND_NAMES, BackendError, create_backend
from hrpose_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, select_providers
from hrpose_ros.runtime.bundle import BundleError


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path)


def _input(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, 48, 64)).astype(np.float32)


def test_registry_names():
    assert set(BACKEND_NAMES) == {"onnxruntime", "tensorrt", "torch", "auto"}


def test_unknown_backend_name_lists_the_known_ones(bundle):
    with pytest.raises(BackendError, match=r"unknown backend 'openvino'.*onnxruntime"):
        create_backend("openvino", bundle)


def test_onnxruntime_backend_matches_a_plain_session(bundle):
    x = _input()
    expected = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"image": x}
    )
    belief, vectors = create_backend("onnxruntime", bundle, threads=1).infer(x)
    assert belief.shape == (1, 18, 12, 16) and vectors.shape == (1, 32, 12, 16)
    np.testing.assert_allclose(belief, expected[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(vectors, expected[1], rtol=1e-6, atol=1e-6)


def test_outputs_land_in_reused_buffers(bundle):
    backend = OnnxRuntimeBackend(bundle, threads=1)
    first = backend.infer(_input(0))[0]
    kept = first.copy()
    second = backend.infer(_input(1))[0]
    assert second is first and not np.allclose(second, kept)


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_every_graph_optimisation_level_gives_the_same_outputs(bundle, level):
    ref = OnnxRuntimeBackend(bundle, threads=1).infer(_input())[0].copy()
    np.testing.assert_allclose(
        OnnxRuntimeBackend(bundle, threads=1, graph_optimization=level).infer(_input())[0],
        ref,
        rtol=1e-5,
        atol=1e-6,
    )


def test_bad_options_are_refused(bundle):
    with pytest.raises(BackendError, match="graph_optimization"):
        OnnxRuntimeBackend(bundle, graph_optimization="max")
    with pytest.raises(BackendError, match="threads"):
        OnnxRuntimeBackend(bundle, threads=0)


def test_wrong_input_shape_is_refused_with_the_expected_shape(bundle):
    with pytest.raises(BackendError, match=r"\(N, 3, 48, 64\)"):
        OnnxRuntimeBackend(bundle, threads=1).infer(np.zeros((1, 3, 64, 48), np.float32))


def test_onnx_file_with_other_tensor_names_is_refused(bundle, tmp_path):
    other = make_bundle(tmp_path / "other")
    import onnx  # noqa: PLC0415

    model = onnx.load(str(other.onnx_path))
    model.graph.output[0].name = "heatmaps"
    model.graph.node[1].output[0] = "heatmaps"
    onnx.save(model, str(other.onnx_path))
    with pytest.raises(BundleError, match=r"outputs \['heatmaps', 'vectors'\]"):
        OnnxRuntimeBackend(bundle, threads=1, onnx_path=other.onnx_path)


def test_provider_selection_prefers_gpu_providers_and_honours_cpu():
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers(available) == available
    assert select_providers(available, "cpu") == ["CPUExecutionProvider"]
    assert select_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(BackendError, match="'cuda' requested"):
        select_providers(["CPUExecutionProvider"], "cuda")


def test_non_spinning_threads_give_the_same_outputs(bundle):
    ref = OnnxRuntimeBackend(bundle, threads=2).infer(_input())[0].copy()
    np.testing.assert_array_equal(OnnxRuntimeBackend(bundle, threads=2, spin=False).infer(_input())[0], ref)


def test_runtime_modules_import_neither_torch_nor_rclpy():
    """Deployment layer rule: a machine without a training stack can run the runtime."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    modules = [
        "hrpose_ros.runtime.estimator",
        "hrpose_ros.runtime.backends",
        "hrpose_ros.runtime.backends.onnxruntime_backend",
        "hrpose_ros.runtime.backends.tensorrt_backend",
        "hrpose_ros.runtime.backends.torch_backend",
        "hrpose_ros.runtime.build_engine",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + ("print(sorted(m for m in ('torch', 'rclpy', 'tensorrt', 'timm') if m in sys.modules))")
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

"""PyTorch backend on CPU: checkpoint loading, outputs equal to the model's, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_fixtures import make_bundle, make_catalogue

torch = pytest.importorskip("torch", reason="the torch backend needs PyTorch")

from hrpose_ros.network.model import create_model  # noqa: E402
from hrpose_ros.runtime.backends import BackendError, create_backend  # noqa: E402
from hrpose_ros.runtime.bundle import BundleError  # noqa: E402
from hrpose_ros.training.checkpoint import save_checkpoint  # noqa: E402

SIZE = (64, 64)


@pytest.fixture(scope="module")
def model_and_checkpoint(tmp_path_factory):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = create_model("hrpose_tiny", 2).eval()
    info = {"variant": "hrpose_tiny", "num_classes": 2, "classes": ["box", "can"], "input_size": list(SIZE)}
    path = save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "last.pt", {"model": model.state_dict(), "model_info": info}
    )
    return model, path


def test_checkpoint_outputs_equal_the_models(model_and_checkpoint, tmp_path):
    model, path = model_and_checkpoint
    bundle = make_bundle(tmp_path, make_catalogue(), input_size=SIZE)
    backend = create_backend("torch", bundle, checkpoint=path, device="cpu")
    assert not backend.fp16 and not backend.cuda_graphs
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    belief, vectors = backend.infer(x)
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
    np.testing.assert_allclose(belief, out["belief"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vectors, out["vectors"].numpy(), rtol=1e-5, atol=1e-5)


def test_checkpoint_for_another_class_count_is_refused(model_and_checkpoint, tmp_path):
    _, path = model_and_checkpoint
    bundle = make_bundle(tmp_path, make_catalogue(("box",)), input_size=SIZE)
    with pytest.raises(BundleError, match=r"trained for 2 classes, the bundle has 1"):
        create_backend("torch", bundle, checkpoint=path, device="cpu")


def test_missing_checkpoint_is_named(tmp_path):
    bundle = make_bundle(tmp_path, input_size=SIZE)
    with pytest.raises(BundleError, match=r"nothing\.pt"):
        create_backend("torch", bundle, checkpoint=tmp_path / "nothing.pt", device="cpu")


def test_bundle_without_checkpoint_or_model_is_refused(tmp_path):
    with pytest.raises(BackendError, match="needs a model or a checkpoint"):
        create_backend("torch", make_bundle(tmp_path, input_size=SIZE), device="cpu")


def test_cuda_graphs_on_cpu_are_refused(model_and_checkpoint, tmp_path):
    model, _ = model_and_checkpoint
    with pytest.raises(BackendError, match="CUDA graphs need a CUDA device"):
        create_backend(
            "torch", make_bundle(tmp_path, input_size=SIZE), model=model, device="cpu", cuda_graphs=True
        )

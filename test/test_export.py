"""hrpose-export: ONNX graph contract, ONNX Runtime vs PyTorch, FP16 file, dynamic batch, CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from runtime_fixtures import make_catalogue

torch = pytest.importorskip("torch", reason="export needs the training stack (torch)")

from hrpose_ros.geometry.decode import DecodeParams  # noqa: E402
from hrpose_ros.network.model import create_model  # noqa: E402
from hrpose_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from hrpose_ros.runtime.bundle import load_bundle  # noqa: E402
from hrpose_ros.training.checkpoint import save_checkpoint  # noqa: E402
from hrpose_ros.training.export import ExportError, export_bundle, main, max_relative_error  # noqa: E402

SIZE = (160, 128)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("hrpose_tiny", 2).eval()
    bundle = export_bundle(
        model, make_catalogue(), tmp_path_factory.mktemp("export") / "tiny", input_size=SIZE
    )
    return model, bundle


def _random_input(seed: int, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, SIZE[1], SIZE[0])).astype(np.float32)


def _torch_out(model, x):
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
    return out["belief"].numpy(), out["vectors"].numpy()


@pytest.mark.slow
def test_student_onnxruntime_matches_pytorch_fp32(tmp_path):
    torch.manual_seed(1)
    model = create_model("hrpose_student", 3).eval()
    x = _random_input(7)
    before = _torch_out(model, x)
    bundle = export_bundle(
        model,
        make_catalogue(("box", "can", "flat")),
        tmp_path / "student",
        input_size=SIZE,
        fp16=False,
        verify=False,
    )
    got = OnnxRuntimeBackend(bundle, threads=2).infer(x)
    for name, a, e in zip(("belief", "vectors"), got, before, strict=True):
        assert max_relative_error(a, e) < 1e-3, name
    for a, e in zip(_torch_out(model, x), before, strict=True):  # export must not touch the model
        np.testing.assert_array_equal(a, e)


def test_tiny_onnxruntime_matches_pytorch_on_fresh_random_input(tiny):
    model, bundle = tiny
    x = _random_input(3)
    for a, e in zip(OnnxRuntimeBackend(bundle, threads=2).infer(x), _torch_out(model, x), strict=True):
        assert max_relative_error(a, e) < 1e-3


def test_graph_has_the_named_fixed_size_io_and_opset_17(tiny):
    _, bundle = tiny
    graph = onnx.load(str(bundle.onnx_path))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = graph.graph.input
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "image" and dims == [1, 3, SIZE[1], SIZE[0]]
    assert [o.name for o in graph.graph.output] == ["belief", "vectors"]


def test_metadata_records_the_contract(tiny):
    _, bundle = tiny
    data = json.loads(bundle.metadata_path.read_text())
    assert data["classes"] == ["box", "can"] and data["input_size"] == list(SIZE) and data["stride"] == 4
    assert data["mean"] == [0.485, 0.456, 0.406] and len(data["keypoints_3d"]) == 2
    assert data["metrics"]["export_max_relative_error"]["belief"] < 1e-3
    assert data["metrics"]["export_fp16_max_relative_error"]["vectors"] < 1e-2
    assert load_bundle(bundle.metadata_path).onnx_sha256 == bundle.onnx_sha256


def test_fp16_file_has_half_weights_float_io_and_close_outputs(tiny):
    _, bundle = tiny
    graph = onnx.load(str(bundle.fp16_onnx_path))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    x = _random_input(4)
    full = OnnxRuntimeBackend(bundle, threads=2).infer(x)
    full = [a.copy() for a in full]
    half = OnnxRuntimeBackend(bundle, threads=2, onnx_path=bundle.fp16_onnx_path).infer(x)
    for a, e in zip(half, full, strict=True):
        assert max_relative_error(a, e) < 1e-2


def test_dynamic_batch_runs_two_images_like_pytorch(tmp_path):
    torch.manual_seed(0)
    model = create_model("hrpose_tiny", 1).eval()
    bundle = export_bundle(
        model, make_catalogue(("box",)), tmp_path / "dyn", input_size=SIZE, dynamic_batch=True, fp16=False
    )
    x = _random_input(5, batch=2)
    got = OnnxRuntimeBackend(bundle, threads=2).infer(x)
    assert got[0].shape[0] == 2
    for a, e in zip(got, _torch_out(model, x), strict=True):
        assert max_relative_error(a, e) < 1e-3


@pytest.mark.slow
def test_simplified_graph_still_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = create_model("hrpose_tiny", 1).eval()
    bundle = export_bundle(
        model, make_catalogue(("box",)), tmp_path / "slim", input_size=SIZE, simplify=True, fp16=False
    )
    assert bundle.training["simplified"] and bundle.metrics["export_max_relative_error"]["vectors"] < 1e-3


def test_input_size_not_a_multiple_of_32_is_refused(tmp_path):
    with pytest.raises(ExportError, match="multiples of 32"):
        export_bundle(
            create_model("hrpose_tiny", 1), make_catalogue(("box",)), tmp_path / "x", input_size=(100, 96)
        )


def test_cli_exports_a_checkpoint_for_its_trained_classes(tmp_path):
    torch.manual_seed(0)
    model = create_model("hrpose_tiny", 2)
    ckpt = save_checkpoint(
        tmp_path / "last.pt",
        {
            "model_name": "hrpose_tiny",
            "model": model.state_dict(),
            "epoch": 3,
            "metrics": {"add": 0.5},
            "model_info": {
                "variant": "hrpose_tiny",
                "num_classes": 2,
                "classes": ["duck", "ape"],
                "input_size": list(SIZE),
                "vector_field": "corner_offsets",
                "offset_scale": 6.0,
            },
        },
    )
    out = tmp_path / "models" / "tiny"
    args = ["--checkpoint", str(ckpt), "--catalogue", "config/objects.yaml", "--out", str(out), "--no-fp16"]
    assert main([*args, "--decode", "centroid_threshold=0.3", "--decode", "snap_radius_px=1"]) == 0
    bundle = load_bundle(out)
    assert bundle.classes == ("duck", "ape") and bundle.object_ids == (9, 1)
    assert bundle.model_name == "hrpose_tiny" and bundle.input_size == SIZE
    assert bundle.training["epoch"] == 3 and bundle.metrics["add"] == 0.5 and bundle.fp16_onnx_path is None
    assert (bundle.vector_field, bundle.offset_scale) == ("corner_offsets", 6.0)  # for the decoder
    assert bundle.decode_params == DecodeParams(centroid_threshold=0.3, snap_radius_px=1.0)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("centroid_treshold=0.3", "unknown decoder settings"),
        ("min_keypoints=0", "min_keypoints is out of range"),
        ("centroid_threshold", "key=value"),
        ("decode.centroid_threshold=0.3", "FIELD=VALUE"),
    ],
)
def test_cli_refuses_a_bad_decoder_setting_in_one_line(tmp_path, caplog, setting, message):
    args = ["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m"), "--no-fp16"]
    assert main([*args, "--decode", setting]) == 1
    assert message in caplog.text and "none.pt" not in caplog.text  # before the checkpoint loads


def test_cli_reports_a_missing_checkpoint_in_one_line(tmp_path, caplog):
    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m")]) == 1
    assert "none.pt" in caplog.text

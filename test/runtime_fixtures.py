"""Project-made fixtures for the runtime tests: cuboid catalogues and small real ONNX graphs.

No torch here: the ONNX graph is built with ``onnx.helper`` (average-pool by the stride,
then two seeded 1×1 convolutions), so bundle/backend tests run on a deployment stack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hrpose_ros.geometry.keypoints import (
    NUM_KEYPOINTS,
    VECTOR_CHANNELS_PER_CLASS,
    cuboid_keypoints,
    keypoint_names,
)
from hrpose_ros.geometry.objects import Catalogue, ObjectSpec
from hrpose_ros.runtime.bundle import ModelBundle, save_bundle_metadata, sha256_file

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

_SIZES = {"box": (0.08, 0.06, 0.10), "can": (0.10, 0.18, 0.10), "flat": (0.15, 0.03, 0.09)}


def make_catalogue(names: tuple[str, ...] = ("box", "can")) -> Catalogue:
    """Cuboid objects centred on their origin (sizes in metres)."""
    objects = []
    for i, name in enumerate(names):
        half = np.asarray(_SIZES.get(name, (0.1, 0.1, 0.1))) / 2
        objects.append(
            ObjectSpec(
                name=name,
                id=i + 1,
                keypoints=cuboid_keypoints(-half, half),
                diameter=float(2 * np.linalg.norm(half)),
                symmetric=False,
                color=(0.5, 0.5, 0.5),
            )
        )
    return Catalogue(objects)


def write_pool_conv_onnx(path: Path, num_classes: int, input_size: tuple[int, int], seed: int = 0) -> Path:
    """A real ONNX network with the bundle I/O contract: ``image`` -> ``belief``, ``vectors``."""
    width, height = input_size
    rng = np.random.default_rng(seed)
    w_belief = rng.standard_normal((num_classes * NUM_KEYPOINTS, 3, 1, 1)).astype(np.float32)
    w_vectors = rng.standard_normal((num_classes * VECTOR_CHANNELS_PER_CLASS, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Conv", ["pooled", "w_belief"], ["belief"]),
        helper.make_node("Conv", ["pooled", "w_vectors"], ["vectors"]),
    ]
    out_hw = [height // 4, width // 4]
    graph = helper.make_graph(
        nodes,
        "pool_conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width])],
        [
            helper.make_tensor_value_info(
                "belief", TensorProto.FLOAT, [1, num_classes * NUM_KEYPOINTS, *out_hw]
            ),
            helper.make_tensor_value_info("vectors", TensorProto.FLOAT, [1, num_classes * 16, *out_hw]),
        ],
        initializer=[
            numpy_helper.from_array(w_belief, "w_belief"),
            numpy_helper.from_array(w_vectors, "w_vectors"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_bundle(
    directory: Path,
    catalogue: Catalogue | None = None,
    input_size: tuple[int, int] = (64, 48),
    name: str = "net",
) -> ModelBundle:
    """Write ``directory/name.onnx`` + ``name.json`` for ``catalogue`` and return the bundle."""
    catalogue = catalogue or make_catalogue()
    onnx_path = write_pool_conv_onnx(directory / f"{name}.onnx", len(catalogue), input_size)
    bundle = ModelBundle(
        onnx_path=onnx_path,
        metadata_path=directory / f"{name}.json",
        classes=tuple(catalogue.names),
        object_ids=tuple(o.id for o in catalogue),
        input_size=input_size,
        mean=MEAN,
        std=STD,
        stride=4,
        keypoints_3d=catalogue.keypoints_3d(),
        diameters=np.array([o.diameter for o in catalogue]),
        symmetric=tuple(o.symmetric for o in catalogue),
        keypoint_order=tuple(keypoint_names()),
        onnx_sha256=sha256_file(onnx_path),
    )
    save_bundle_metadata(bundle)
    return bundle

"""Build a TensorRT engine from a bundle's ONNX file, on TensorRT 10.x and 11.x.

The differences between the majors are decided by pure functions (``build_plan``),
tested with fake version strings; ``build_serialized_engine`` applies a plan through
the TensorRT Python API:

- 10.x: explicit batch is the default (``create_network(0)``); FP16 is the builder
  flag ``BuilderFlag.FP16`` on the FP32 ONNX.
- 11.x: networks must be strongly typed (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``)
  and the FP16/INT8 builder flags are gone: FP16 means building the FP16 ONNX that
  ``hrpose-export`` writes (``NAME.fp16.onnx``).

Written against NVIDIA's documented API; no TensorRT builder could be installed where
this was developed, so this path is unverified on hardware (see README).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrpose_ros.runtime.bundle import BundleError, ModelBundle

__all__ = [
    "PRECISIONS",
    "BuildPlan",
    "TensorRTBuildError",
    "build_plan",
    "build_serialized_engine",
    "import_tensorrt",
    "onnx_for_plan",
    "tensorrt_major",
]

_LOG = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32")
"""Engine precisions ``build_plan`` accepts (INT8 needs a Q/DQ ONNX; not offered yet)."""

_SUPPORTED_MAJORS = (10, 11)


class TensorRTBuildError(RuntimeError):
    """TensorRT is missing, too old, or failed to parse/build the network."""


@dataclass(frozen=True)
class BuildPlan:
    """Version-specific build decisions.

    ``onnx_variant`` is ``"fp32"`` or ``"fp16"`` (which bundle ONNX file to parse);
    ``network_flags`` and ``builder_flags`` are names of
    ``trt.NetworkDefinitionCreationFlag`` / ``trt.BuilderFlag`` members.
    """

    major: int
    precision: str
    onnx_variant: str
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]

    @property
    def strongly_typed(self) -> bool:
        """True when tensor types come from the ONNX file (TensorRT >= 11)."""
        return "STRONGLY_TYPED" in self.network_flags


def tensorrt_major(version: str) -> int:
    """Major version of a TensorRT version string (``"10.13.0.35"`` -> 10)."""
    head = str(version).strip().split(".")[0]
    if not head.isdigit():
        raise TensorRTBuildError(f"cannot parse the TensorRT version {version!r}")
    return int(head)


def build_plan(version: str, precision: str = "fp16") -> BuildPlan:
    """Decide network flags, builder flags and ONNX variant for a TensorRT version."""
    if precision not in PRECISIONS:
        raise TensorRTBuildError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    major = tensorrt_major(version)
    if major < _SUPPORTED_MAJORS[0]:
        raise TensorRTBuildError(f"TensorRT {version} is too old: hrpose_ros supports TensorRT 10 and 11")
    if major > _SUPPORTED_MAJORS[-1]:
        _LOG.warning(
            "TensorRT %s is newer than the tested majors %s; using the 11.x rules", version, _SUPPORTED_MAJORS
        )
    if major == 10:
        flags = ("FP16",) if precision == "fp16" else ()
        return BuildPlan(major, precision, "fp32", (), flags)
    return BuildPlan(major, precision, precision, ("STRONGLY_TYPED",), ())


def onnx_for_plan(bundle: ModelBundle, plan: BuildPlan) -> Path:
    """The bundle's ONNX file that the plan builds (the FP16 one for 11.x FP16)."""
    if plan.onnx_variant == "fp32":
        return bundle.onnx_path
    if bundle.fp16_onnx_path is None or not bundle.fp16_onnx_path.is_file():
        raise BundleError(
            f"model bundle {bundle.metadata_path} has no FP16 ONNX file, which TensorRT {plan.major}.x needs "
            "for an FP16 engine (strongly typed network); "
            "re-export with hrpose-export or build with precision fp32"
        )
    return bundle.fp16_onnx_path


def import_tensorrt() -> Any:
    """Import the ``tensorrt`` module or raise a clear ``TensorRTBuildError``."""
    try:
        import tensorrt as trt  # noqa: PLC0415 (lazy: optional, GPU machines only)
    except ImportError as exc:
        raise TensorRTBuildError(
            f"TensorRT is not installed ({exc}); "
            "install NVIDIA's tensorrt wheel or use the onnxruntime backend"
        ) from exc
    return trt


def _network_flags(trt: Any, names: tuple[str, ...]) -> int:
    flags = 0
    for name in names:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    return flags


def _parse_onnx(trt: Any, network: Any, logger: Any, onnx_path: Path) -> Any:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTBuildError(f"TensorRT could not parse the ONNX file {onnx_path}: {errors}")
    return parser


def _set_timing_cache(config: Any, timing_cache_path: Path | None) -> Any:
    data = b""
    if timing_cache_path is not None and timing_cache_path.is_file():
        data = timing_cache_path.read_bytes()
        _LOG.info("TensorRT timing cache: %s (%d bytes)", timing_cache_path, len(data))
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _add_batch_profile(trt: Any, builder: Any, config: Any, bundle: ModelBundle, max_batch: int) -> None:
    """Optimisation profile for a dynamic-batch ONNX (batch 1 is the optimum)."""
    _, c, h, w = 1, 3, bundle.input_height, bundle.input_width
    profile = builder.create_optimization_profile()
    profile.set_shape(bundle.input_name, (1, c, h, w), (1, c, h, w), (max_batch, c, h, w))
    config.add_optimization_profile(profile)


def build_serialized_engine(
    bundle: ModelBundle,
    plan: BuildPlan,
    timing_cache_path: Path | None = None,
    workspace_bytes: int = 1 << 30,
    max_batch: int = 1,
) -> bytes:
    """Parse the plan's ONNX file and build a serialised engine (bytes).

    The timing cache at ``timing_cache_path`` is read when present and rewritten after
    the build, so later builds on the same GPU and TensorRT version are faster.
    """
    trt = import_tensorrt()
    onnx_path = onnx_for_plan(bundle, plan)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt, plan.network_flags))
    _parser = _parse_onnx(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    for flag in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    _set_timing_cache(config, timing_cache_path)
    if bundle.dynamic_batch:
        _add_batch_profile(trt, builder, config, bundle, max_batch)
    _LOG.info(
        "building TensorRT %s %s engine from %s (this takes minutes)",
        trt.__version__,
        plan.precision,
        onnx_path,
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTBuildError(
            f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)"
        )
    if timing_cache_path is not None:
        timing_cache_path.parent.mkdir(parents=True, exist_ok=True)
        timing_cache_path.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))

"""``hrpose-build-engine``: build the TensorRT engine of a model bundle ahead of time.

On the robot, run this once after installing a bundle (or a new TensorRT / GPU) so the
node's first start does not spend minutes building. The engine lands in the same cache
the TensorRT backend reads, keyed by GPU model, TensorRT version and ONNX hash.
"""

from __future__ import annotations

import argparse
import logging

from hrpose_ros.runtime.backends.tensorrt_backend import DEFAULT_CACHE_DIR, load_or_build_engine
from hrpose_ros.runtime.bundle import BundleError, load_bundle
from hrpose_ros.runtime.cuda_buffers import CudaError
from hrpose_ros.runtime.trt_builder import PRECISIONS, TensorRTBuildError

__all__ = ["main"]

_LOG = logging.getLogger(__name__)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hrpose-build-engine", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="model bundle: models/NAME, NAME.json or NAME.onnx")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="engine cache directory")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument("--device", type=int, default=0, help="CUDA device index")
    parser.add_argument("--workspace-mib", type=int, default=1024, help="builder workspace limit")
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when the cache holds a valid engine"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 0 on success, 1 with a one-line reason otherwise."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        bundle = load_bundle(args.bundle)
        _, path = load_or_build_engine(
            bundle,
            args.cache_dir,
            precision=args.precision,
            device=args.device,
            workspace_bytes=args.workspace_mib << 20,
            force_rebuild=args.force,
        )
    except (BundleError, TensorRTBuildError, CudaError) as exc:
        _LOG.error("%s", exc)
        return 1
    print(f"engine ready: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

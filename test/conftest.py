"""Shared pytest set-up for hrpose_ros.

- ROS isolation: every test session claims a ROS domain id of its own (a lock file per id,
  so parallel sessions on one machine never share one) and restricts DDS discovery to
  this host, so tests never talk to other machines or to each other. Child processes
  started by tests inherit the settings through the environment.
- `rclpy_context`: an initialised rclpy context, shut down after the test.
- Tests marked `gpu` skip without an NVIDIA device; tests marked `tensorrt` skip without
  the `tensorrt` Python package.
- Torch and BLAS use at most two threads (CI machines have two cores).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[1]
_DOMAIN_IDS = range(1, 101)  # 0-101 is the portable range; 0 is everyone's default
_DOMAIN_LOCKS: list[IO[str]] = []  # held open for the whole session


def _claim_domain_id() -> tuple[int, IO[str]]:
    """Return a ROS domain id no other running test session holds, and its lock file."""
    import fcntl  # noqa: PLC0415  (POSIX only, like the rest of the test suite)

    start = os.getpid() % len(_DOMAIN_IDS)
    for offset in range(len(_DOMAIN_IDS)):
        domain_id = _DOMAIN_IDS[(start + offset) % len(_DOMAIN_IDS)]
        lock_path = Path(tempfile.gettempdir()) / f"hrpose_ros_test_ros_domain_{domain_id}.lock"
        handle = lock_path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain_id, handle
    raise RuntimeError(f"all ROS domain ids {_DOMAIN_IDS.start}-{_DOMAIN_IDS.stop - 1} are in use by tests")


def _has_nvidia_gpu() -> bool:
    """True when an NVIDIA driver exposes a device (no torch import needed)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def pytest_configure(config: pytest.Config) -> None:
    """Isolate ROS traffic and limit threads before any test imports rclpy or torch."""
    domain_id, lock = _claim_domain_id()
    _DOMAIN_LOCKS.append(lock)
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_STATIC_PEERS"] = ""
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated since Iron; conflicts with the above
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "2")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the ROS domain id."""
    while _DOMAIN_LOCKS:
        _DOMAIN_LOCKS.pop().close()


def pytest_report_header(config: pytest.Config) -> str:
    """Show the isolation settings in the pytest header."""
    return (
        f"ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')}, "
        f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')}"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip GPU and TensorRT tests cleanly where the hardware or library is missing."""
    skip_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU (none visible)")
    skip_trt = pytest.mark.skip(reason="needs TensorRT (the tensorrt package is not installed)")
    has_gpu = _has_nvidia_gpu()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)
        if "tensorrt" in item.keywords and not has_trt:
            item.add_marker(skip_trt)


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    """Limit torch to two intra-op threads if a test module has imported torch."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(2)


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """The ROS domain id of this test session (also in the environment)."""
    return int(os.environ["ROS_DOMAIN_ID"])


@pytest.fixture
def rclpy_context() -> Iterator[object]:
    """An initialised `rclpy.context.Context` of this session's domain, shut down afterwards.

    Pass it on: `rclpy.create_node(name, context=rclpy_context)` and
    `SingleThreadedExecutor(context=rclpy_context)`. Uses only the API shared by
    Humble, Jazzy and Kilted.
    """
    import rclpy  # noqa: PLC0415  (only ROS tests pay for the import)
    from rclpy.context import Context  # noqa: PLC0415

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        with contextlib.suppress(Exception):
            context.try_shutdown()

"""On-disk cache of serialised TensorRT engines.

An engine is valid for one GPU model, one TensorRT version and one ONNX file, so the
cache key holds all three (plus the precision). Each engine file has a JSON sidecar
with the key and the engine's own SHA-256; a key mismatch or a corrupt file is logged
with its reason and the engine is rebuilt. Pure Python: testable without a GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from hrpose_ros.runtime.bundle import sha256_file

__all__ = ["EngineCache", "EngineCacheError", "EngineKey", "engine_key"]

_LOG = logging.getLogger(__name__)


class EngineCacheError(ValueError):
    """Bad cache arguments (e.g. a build function that returned no engine)."""


@dataclass(frozen=True)
class EngineKey:
    """What a serialised engine depends on."""

    gpu_name: str
    tensorrt_version: str
    onnx_sha256: str
    precision: str

    def differences(self, other: EngineKey) -> list[str]:
        """Human-readable list of fields that differ (for the rebuild log line)."""
        return [
            f"{name} {getattr(other, name)!r} -> {getattr(self, name)!r}"
            for name in ("gpu_name", "tensorrt_version", "onnx_sha256", "precision")
            if getattr(self, name) != getattr(other, name)
        ]


def engine_key(onnx_path: str | Path, gpu_name: str, tensorrt_version: str, precision: str) -> EngineKey:
    """Key for building ``onnx_path`` on ``gpu_name`` with TensorRT ``tensorrt_version``."""
    return EngineKey(gpu_name.strip(), tensorrt_version.strip(), sha256_file(onnx_path), precision)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


class EngineCache:
    """A directory of ``<stem>.<precision>.engine`` files with ``.json`` sidecars."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)

    def engine_path(self, stem: str, precision: str) -> Path:
        """Engine file for a bundle name and precision."""
        return self.cache_dir / f"{_slug(stem)}.{_slug(precision)}.engine"

    def timing_cache_path(self, gpu_name: str, tensorrt_version: str) -> Path:
        """Timing cache shared by all builds on one GPU model with one TensorRT version."""
        return self.cache_dir / f"timing.{_slug(gpu_name)}.trt{_slug(tensorrt_version)}.cache"

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def load(self, stem: str, key: EngineKey) -> bytes | None:
        """The cached engine for ``key``, or None (with a log line saying why)."""
        path = self.engine_path(stem, key.precision)
        sidecar = self._sidecar(path)
        if not path.is_file():
            _LOG.info("TensorRT engine cache miss: %s does not exist; building", path)
            return None
        try:
            meta = json.loads(sidecar.read_text())
            stored = EngineKey(**meta["key"])
            expected_digest = meta["engine_sha256"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _LOG.warning(
                "TensorRT engine cache: sidecar %s unreadable (%s); rebuilding %s", sidecar, exc, path
            )
            return None
        if stored != key:
            _LOG.warning(
                "TensorRT engine cache: %s was built for another configuration (%s); rebuilding",
                path,
                "; ".join(key.differences(stored)),
            )
            return None
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != expected_digest:
            _LOG.warning("TensorRT engine cache: %s is corrupt (SHA-256 mismatch); rebuilding", path)
            return None
        return blob

    def store(self, stem: str, key: EngineKey, blob: bytes) -> Path:
        """Write the engine and its sidecar atomically; returns the engine path."""
        if not blob:
            raise EngineCacheError(f"refusing to cache an empty engine for {stem!r}")
        path = self.engine_path(stem, key.precision)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"key": asdict(key), "engine_sha256": hashlib.sha256(blob).hexdigest()}
        for target, data in (
            (path, blob),
            (self._sidecar(path), (json.dumps(meta, indent=2) + "\n").encode()),
        ):
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        _LOG.info("TensorRT engine cached at %s", path)
        return path

    def invalidate(self, stem: str, precision: str) -> None:
        """Remove an engine (e.g. one TensorRT could not deserialise)."""
        path = self.engine_path(stem, precision)
        for target in (path, self._sidecar(path)):
            target.unlink(missing_ok=True)

    def load_or_build(self, stem: str, key: EngineKey, build: Callable[[], bytes]) -> bytes:
        """Return the cached engine for ``key`` or build, store and return a new one."""
        blob = self.load(stem, key)
        if blob is not None:
            _LOG.info("TensorRT engine cache hit: %s", self.engine_path(stem, key.precision))
            return blob
        blob = build()
        if not blob:
            raise EngineCacheError(f"the TensorRT build for {stem!r} returned no engine")
        self.store(stem, key, blob)
        return blob

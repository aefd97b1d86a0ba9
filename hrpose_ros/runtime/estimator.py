"""The estimator: camera image + intrinsics -> list of object poses.

One object used by every consumer (node, evaluation, demo, benchmark), so they all
measure the same code: preprocess (letterbox to the network size) -> backend ->
greedy decode (geometry core) -> keypoints mapped back to the ORIGINAL image -> PnP
with the original intrinsics and distortion (geometry core). Poses come out in the
camera optical frame of the image that was passed in.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np

from hrpose_ros.geometry.camera import DISTORTION_MODELS, check_intrinsics
from hrpose_ros.geometry.decode import DecodeParams, Instance, decode
from hrpose_ros.geometry.pnp import solve_instance_pose
from hrpose_ros.runtime.backends.base import Backend
from hrpose_ros.runtime.bundle import ModelBundle
from hrpose_ros.runtime.preprocess import Preprocessor

__all__ = ["STAGES", "Detection", "Estimator"]

_LOG = logging.getLogger(__name__)

STAGES = ("preprocess", "inference", "decode", "pnp", "total")
"""Keys of ``Estimator.last_timings`` (seconds)."""


@dataclass(frozen=True)
class Detection:
    """One object instance with its pose in the camera optical frame.

    ``R`` (3, 3) and ``t`` (3,) metres map object points to the camera:
    ``x_cam = R @ x_obj + t``. ``keypoints_2d`` (9, 2) are original-image pixels in
    ``Keypoint`` order (NaN = not found); ``instance`` numbers the detections of one
    class in a frame from 0.
    """

    class_name: str
    class_id: int
    class_index: int
    instance: int
    R: np.ndarray
    t: np.ndarray
    confidence: float
    keypoints_2d: np.ndarray
    reprojection_error_px: float
    num_points: int


class Estimator:
    """Runs the whole pipeline for one camera image.

    Args:
        bundle: model bundle (classes, input size, normalisation, 3D keypoints).
        backend: an inference backend for that bundle (``create_backend``).
        decode_params: decoding thresholds (None: the bundle's own, ``bundle.decode_params``);
            can be replaced at run time through the ``decode_params`` property (the node
            updates thresholds live).
        preprocess_mode: ``"letterbox"`` (keep aspect) or ``"resize"``.
        max_reprojection_error_px: drop poses whose mean reprojection error is larger
            (None keeps all).
        use_ransac: RANSAC PnP (robust to a wrongly grouped keypoint, slower).
    """

    def __init__(
        self,
        bundle: ModelBundle,
        backend: Backend,
        decode_params: DecodeParams | None = None,
        *,
        preprocess_mode: str = "letterbox",
        max_reprojection_error_px: float | None = None,
        use_ransac: bool = False,
    ) -> None:
        if backend.bundle.input_size != bundle.input_size or backend.bundle.classes != bundle.classes:
            raise ValueError(
                f"backend was created for bundle {backend.bundle.metadata_path}, not {bundle.metadata_path}"
            )
        self.bundle = bundle
        self.backend = backend
        self.preprocessor = Preprocessor(bundle.input_size, bundle.mean, bundle.std, mode=preprocess_mode)
        self.decode_params = decode_params if decode_params is not None else bundle.decode_params
        self.max_reprojection_error_px = max_reprojection_error_px
        self.use_ransac = use_ransac
        self.last_timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.last_instances: list[Instance] = []

    @property
    def decode_params(self) -> DecodeParams:
        """Current decoding thresholds."""
        return self._decode_params

    @decode_params.setter
    def decode_params(self, params: DecodeParams) -> None:
        if not isinstance(params, DecodeParams):
            raise TypeError(f"decode_params must be a DecodeParams, got {type(params).__name__}")
        self._decode_params = params

    def __call__(
        self,
        image: np.ndarray,
        K: np.ndarray,
        dist: np.ndarray | None = None,
        encoding: str = "bgr8",
        *,
        distortion_model: str = "plumb_bob",
    ) -> list[Detection]:
        """Estimate the poses of all instances in one image.

        Args:
            image: (H, W, 3) uint8 (or (H, W) for ``mono8``), any size.
            K: (3, 3) intrinsics of ``image`` (CameraInfo ``k``).
            dist: distortion coefficients of ``image`` (OpenCV order, CameraInfo ``d``)
                or None; the image is not undistorted, PnP models the distortion.
            encoding: ``bgr8``, ``rgb8``, ``bgra8``, ``rgba8`` or ``mono8``.
            distortion_model: ``plumb_bob``, ``rational_polynomial`` or ``equidistant``
                (fisheye: the keypoints are undistorted before PnP).

        Returns:
            Detections sorted by class index, then confidence (highest first).
        """
        K = check_intrinsics(K)
        if distortion_model not in DISTORTION_MODELS:
            raise ValueError(f"distortion_model must be one of {DISTORTION_MODELS}, got {distortion_model!r}")
        dist_arr = None if dist is None else np.asarray(dist, dtype=np.float64).reshape(-1)
        if dist_arr is not None and not np.any(dist_arr):
            dist_arr = None
        t0 = time.perf_counter()
        tensor, transform = self.preprocessor(image, encoding)
        t1 = time.perf_counter()
        belief, vectors = self.backend.infer(tensor)
        t2 = time.perf_counter()
        params = self._decode_params
        bundle = self.bundle
        instances = decode(
            belief[0],
            vectors[0],
            bundle.num_classes,
            params,
            stride=bundle.stride,
            vector_field=bundle.vector_field,
            offset_scale=bundle.offset_scale,
        )
        instances = [
            dataclasses.replace(i, keypoints=transform.input_to_image(i.keypoints)) for i in instances
        ]
        self.last_instances = instances
        t3 = time.perf_counter()
        detections = self._solve(instances, K, dist_arr, distortion_model)
        t4 = time.perf_counter()
        self.last_timings = {
            "preprocess": t1 - t0,
            "inference": t2 - t1,
            "decode": t3 - t2,
            "pnp": t4 - t3,
            "total": t4 - t0,
        }
        return detections

    def _solve(
        self, instances: list[Instance], K: np.ndarray, dist: np.ndarray | None, distortion_model: str
    ) -> list[Detection]:
        """PnP per instance in original-image pixels; numbering per class by confidence."""
        ordered = sorted(instances, key=lambda i: (i.class_index, -i.confidence))
        counts: dict[int, int] = {}
        detections = []
        for inst in ordered:
            c = inst.class_index
            pose = solve_instance_pose(
                inst,
                self.bundle.keypoints_3d[c],
                K,
                dist,
                use_ransac=self.use_ransac,
                distortion_model=distortion_model,
            )
            if pose is None:
                continue
            limit = self.max_reprojection_error_px
            if limit is not None and pose.reprojection_error_px > limit:
                continue
            detections.append(
                Detection(
                    class_name=self.bundle.classes[c],
                    class_id=self.bundle.object_ids[c],
                    class_index=c,
                    instance=counts.get(c, 0),
                    R=pose.R,
                    t=pose.t,
                    confidence=float(inst.confidence),
                    keypoints_2d=inst.keypoints,
                    reprojection_error_px=float(pose.reprojection_error_px),
                    num_points=int(pose.num_points),
                )
            )
            counts[c] = counts.get(c, 0) + 1
        return detections

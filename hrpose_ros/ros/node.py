"""The ROS 2 node: Image + CameraInfo in; poses, TF, detections, tracks, markers, overlay out.

Thin by design: message conversion (``ros_messages``), CameraInfo matching
(``stamp_matcher``) and everything numeric is a call into the runtime ``Estimator``,
the same code the offline evaluation measures, and into the runtime ``Tracker``
(stable ids, filtered poses). Callbacks only store the newest image;
a worker thread processes it, so a slow model drops frames (counted) instead of
building a queue. Uses only rclpy API shared by Humble, Jazzy and Kilted.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from hrpose_ros.geometry.objects import MESH_UNITS, load_catalogue
from hrpose_ros.ros import ros_messages as rm
from hrpose_ros.ros.dds_transport import TRANSPORTS_VARIABLE, prefer_node_transports
from hrpose_ros.ros.node_params import (
    DECODE_PARAM_NAMES,
    NODE_NAME,
    PARAM_SPECS,
    NodeConfigError,
    ParamSpec,
    decode_param_specs,
    decode_params_from,
    tracker_params_from,
    validate_params,
)
from hrpose_ros.ros.node_stats import KeyedThrottle, PipelineStats
from hrpose_ros.ros.stamp_matcher import StampMatcher, StampOrder, StampVerdict, stamp_to_ns
from hrpose_ros.runtime.backends import create_backend, resolve_backend_name
from hrpose_ros.runtime.bundle import BundleError, load_bundle, select_for_bundle
from hrpose_ros.runtime.estimator import STAGES, Estimator
from hrpose_ros.runtime.tracking import Track, Tracker

__all__ = ["HRPoseNode", "ModelLoadError", "main"]


class ModelLoadError(RuntimeError):
    """The model bundle or its backend could not be loaded (one-line message for ``main``)."""


@dataclass
class _Result:
    """One processed frame, waiting to be published (worker -> executor thread)."""

    detections: list
    tracks: list[Track] | None
    """The tracker's output (None: tracking is off)."""
    header: Header
    stamp_ns: int
    image: np.ndarray
    encoding: str
    camera: rm.CameraModel
    K: np.ndarray
    stages: dict[str, float]
    t_start: float


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.value_range is not None:
        lo, hi = spec.value_range
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
            ]
    return desc


def _topic_token(name: str) -> str:
    """A class name made safe for a topic name component."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return token if token[:1].isalpha() else f"c_{token}"


class HRPoseNode(Node):
    """6D pose estimation node (see the module docstring and ``config/hrpose.yaml``).

    Args:
        node_name: ROS node name.
        **kwargs: forwarded to ``rclpy.node.Node`` (``parameter_overrides``, ``context``...).

    Raises:
        NodeConfigError: a parameter value is unusable (message names it).
        ModelLoadError / BundleError: the model cannot be loaded.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any):
        self._lock = threading.Condition()
        self._stop = False
        self._worker: threading.Thread | None = None
        super().__init__(node_name, **kwargs)
        for spec in PARAM_SPECS:
            if spec.name not in DECODE_PARAM_NAMES:  # those default to the model's, below
                self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        values = self._param_values()
        validate_params(values)
        self._stats = PipelineStats()
        self._throttle = KeyedThrottle(float(values["log_throttle_s"]))
        self._order = StampOrder()
        self._tracker: Tracker | None = None
        self._matcher: StampMatcher[CameraInfo] = StampMatcher(
            slop_ns=int(values["camera_info_slop_s"] * 1e9), capacity=64, mode=values["camera_info_mode"]
        )
        self._load_model(values)
        model_decode = decode_param_specs(self._bundle.decode_params)
        try:  # a bundle's setting the node's range refuses is the bundle's fault, not a parameter's
            validate_params({spec.name: spec.default for spec in model_decode})
        except NodeConfigError as exc:
            raise ModelLoadError(f"model {self._bundle.metadata_path}, 'decode': {exc}") from None
        for spec in model_decode:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        values = self._param_values()
        validate_params(values)
        self._apply_live(values)
        self._pending: Image | None = None
        self._outbox: _Result | None = None
        self._make_publishers()
        # Publishing happens in the executor thread: the worker hands its result over
        # through this guard condition (rclpy entities are not used from two threads).
        self._publish_trigger = self.create_guard_condition(self._flush_outbox)
        self._make_subscriptions(values)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(float(values["diagnostics_period_s"]), self._report)
        self._worker = threading.Thread(target=self._work, name="hrpose_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: model {self._bundle.metadata_path} ({', '.join(self._bundle.classes)}), "
            f"backend {self._backend_name}, tracking {'on' if self._tracker is not None else 'off'}, "
            f"listening on {self._image_sub.topic_name}"
        )

    # ------------------------------------------------------------------ setup

    def _param_values(self) -> dict[str, Any]:
        """Values of the declared parameters (the decoder's are declared once the model is loaded)."""
        return {
            spec.name: self.get_parameter(spec.name).value
            for spec in PARAM_SPECS
            if self.has_parameter(spec.name)
        }

    def _load_model(self, values: dict[str, Any]) -> None:
        self._bundle = load_bundle(values["model"])
        self._catalogue = None
        if values["catalogue"]:
            self._catalogue = select_for_bundle(self._bundle, load_catalogue(values["catalogue"]))
        try:
            resolved = resolve_backend_name(values["backend"])
            options: dict[str, Any] = {}
            if resolved == "tensorrt" and values["engine_cache_dir"]:
                options["cache_dir"] = values["engine_cache_dir"]
            if resolved == "onnxruntime" and values["inference_threads"] > 0:
                options["threads"] = int(values["inference_threads"])
            self._backend = create_backend(resolved, self._bundle, **options)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load model {self._bundle.onnx_path} with backend '{values['backend']}': {exc}"
            ) from exc
        self._backend_name = resolved
        self._estimator = Estimator(self._bundle, self._backend)  # _apply_live sets the thresholds
        self._keypoints_3d = {c: self._bundle.keypoints_3d[i] for i, c in enumerate(self._bundle.classes)}
        self._symmetries = {} if self._catalogue is None else {o.name: o.symmetries for o in self._catalogue}
        unknown = [c for i, c in enumerate(self._bundle.classes) if self._bundle.symmetric[i]]
        unknown = [c for c in unknown if not self._symmetries.get(c)]
        if unknown:
            self.get_logger().warning(
                f"symmetric classes without symmetry transforms: {unknown}; the tracker filters their "
                "poses as they come (set 'catalogue' to an objects.yaml with their 'symmetries')"
            )

    def _apply_live(self, values: dict[str, Any]) -> None:
        """Apply the run-time-changeable parameters (thresholds, classes, TF, tracking, camera matching)."""
        classes = list(values["classes"])
        unknown = [c for c in classes if c != "*" and c not in self._bundle.classes]
        if unknown:
            raise NodeConfigError(
                f"parameter 'classes' names classes the model does not know: {unknown} "
                f"(model classes: {list(self._bundle.classes)})"
            )
        self._estimator.decode_params = decode_params_from(values)
        self._min_score = float(values.get("min_score", 0.0))
        self._classes = None if "*" in classes else set(classes)
        self._publish_tf = bool(values["publish_tf"])
        self._tf_prefix = str(values["tf_prefix"])
        self._tf_frames = str(values["tf_frames"])
        self._fallback_frame_id = str(values["fallback_frame_id"])
        tracker_params = tracker_params_from(values)
        if not values["tracking"]:
            self._tracker = None  # the worker keeps the one it is using for its current frame
        elif self._tracker is None:
            self._tracker = Tracker(tracker_params, self._symmetries)  # a fresh start: ids from 0
        else:
            self._tracker.params = tracker_params
        self._rectified = bool(values["image_is_rectified"])
        self._max_pixels = int(values["max_image_pixels"])
        self._matcher.slop_ns = int(float(values["camera_info_slop_s"]) * 1e9)
        self._matcher.mode = type(self._matcher.mode)(values["camera_info_mode"])
        self._info_wait_s = float(values["camera_info_wait_s"])

    def _make_publishers(self) -> None:
        self._pose_pubs = {
            c: self.create_publisher(PoseStamped, f"~/poses/{_topic_token(c)}", 10)
            for c in self._bundle.classes
        }
        self._marker_pub = self.create_publisher(MarkerArray, "~/markers", 10)
        self._overlay_pub = self.create_publisher(Image, "~/overlay", 2)
        self._detections_pub = self._tracked_pub = None
        try:
            from vision_msgs.msg import Detection3DArray  # noqa: PLC0415 (optional package)

            self._detections_pub = self.create_publisher(Detection3DArray, "~/detections", 10)
            self._tracked_pub = self.create_publisher(Detection3DArray, "~/tracked", 10)
            self._detections_msg = rm.Detection3DArrayBuilder(self._keypoints_3d)
            self._tracked_msg = rm.Detection3DArrayBuilder(self._keypoints_3d)
        except ImportError:
            self.get_logger().warning(
                "vision_msgs is not installed: ~/detections and ~/tracked are not published"
            )
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._tf_send = self._make_tf_sender()

    def _make_tf_sender(self):
        try:
            from tf2_ros import TransformBroadcaster  # noqa: PLC0415 (optional package)

            broadcaster = TransformBroadcaster(self)
            return broadcaster.sendTransform
        except ImportError:
            pass
        try:
            from tf2_msgs.msg import TFMessage  # noqa: PLC0415 (optional package)
        except ImportError:
            self.get_logger().warning(
                "neither tf2_ros nor tf2_msgs is installed: TF frames are not published"
            )
            return None
        tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        return lambda transforms: tf_pub.publish(TFMessage(transforms=list(transforms)))

    def _make_subscriptions(self, values: dict[str, Any]) -> None:
        reliability = (
            ReliabilityPolicy.RELIABLE
            if values["qos_reliability"] == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        )
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=int(values["qos_depth"]), reliability=reliability
        )
        self._image_sub = self.create_subscription(Image, "image", self._on_image, qos)
        self._info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)

    # ------------------------------------------------------------------ callbacks (short: store only)

    def _on_image(self, msg: Image) -> None:
        self._stats.count("received")
        with self._lock:
            if self._pending is not None:
                self._stats.count("dropped")
            self._pending = msg
            self._lock.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._matcher.add(stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec), msg)
            self._lock.notify_all()  # an image may be waiting for it (_camera_for)

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        values = self._param_values()
        values.update({p.name: p.value for p in params})
        try:
            validate_params(values)
            with self._lock:
                self._apply_live(values)
        except (NodeConfigError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.get_logger().info("parameters updated: " + ", ".join(f"{p.name}={p.value}" for p in params))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stop:
                    self._lock.wait()
                if self._stop:
                    return
                msg, self._pending = self._pending, None
            try:
                result = self._estimate(msg)
                with self._lock:
                    self._outbox = result
                self._publish_trigger.trigger()
            except rm.BadInputError as exc:
                self._stats.count("bad_input")
                self._warn(exc.reason, f"{exc}; frame dropped")
            except Exception as exc:
                self._stats.count("errors")
                self._warn("error", f"frame processing failed: {type(exc).__name__}: {exc}")

    def _warn(self, key: str, text: str) -> None:
        allowed, suppressed = self._throttle.allow(key)
        if allowed:
            more = f" ({suppressed} similar messages suppressed)" if suppressed else ""
            self.get_logger().warning(f"[{key}] {text}{more}")

    def _camera_for(self, msg: Image, stamp_ns: int) -> rm.CameraModel:
        with self._lock:
            verdict = self._order.check(stamp_ns)
            if verdict is StampVerdict.RESET:  # a clock reset (bag loop): history is forgotten
                self._matcher.discard_newer_than(stamp_ns + self._matcher.slop_ns)
                if self._tracker is not None:
                    self._tracker = Tracker(self._tracker.params, self._symmetries)
            info = self._matcher.match(stamp_ns)
            if info is None and verdict is not StampVerdict.BACKWARDS:
                info = self._wait_for_camera_info(stamp_ns)
            gap = self._matcher.nearest_gap_ns(stamp_ns)
        if verdict is StampVerdict.BACKWARDS:
            raise rm.BadInputError(
                "stamp",
                f"image stamp {stamp_ns * 1e-9:.3f} s is not newer than the previous image "
                f"({self._order.newest_ns * 1e-9:.3f} s): out-of-order frame",
            )
        if info is None:
            where = (
                "no CameraInfo received yet"
                if gap is None
                else f"nearest CameraInfo is {gap * 1e-6:.1f} ms away"
            )
            raise rm.BadInputError(
                "no_camera_info",
                f"no CameraInfo for the image stamped {stamp_ns * 1e-9:.3f} s on {self._info_sub.topic_name} "
                f"({where}; camera_info_slop_s={self._matcher.slop_ns * 1e-9:g}, camera_info_mode="
                f"{self._matcher.mode.value})",
            )
        return rm.camera_from_info(info, self._rectified)

    def _wait_for_camera_info(self, stamp_ns: int) -> CameraInfo | None:
        """The image's CameraInfo, waited for up to ``camera_info_wait_s`` (lock held).

        Why: image and CameraInfo arrive on two subscriptions, and the executor may hand
        over the image first (message_filters' synchronisers wait for the same reason).
        The wait ends early when a CameraInfo newer than the image's stamp plus the slop
        arrives, since the camera has then moved past this image.
        """
        limit = stamp_ns + self._matcher.slop_ns

        def settled() -> bool:
            found = self._matcher.match(stamp_ns) is not None
            return self._stop or found or self._matcher.has_newer_than(limit)

        self._lock.wait_for(settled, timeout=self._info_wait_s)
        return self._matcher.match(stamp_ns)

    def process_image(self, msg: Image) -> list:
        """Run the pipeline on one image and publish, in the calling thread.

        Returns:
            The published detections (``runtime.estimator.Detection``).

        Raises:
            BadInputError: the image or its CameraInfo is unusable (nothing published).
        """
        result = self._estimate(msg)
        self._publish_result(result)
        return result.detections

    def _estimate(self, msg: Image) -> _Result:
        """Message -> detections (all the computing; nothing is published here)."""
        t0 = time.perf_counter()
        stamp_ns = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
        camera = self._camera_for(msg, stamp_ns)
        image, encoding = rm.image_to_array(msg)
        rm.check_resolution(camera, msg.width, msg.height)
        image, K, scale = rm.downscale_to_fit(image, camera.K, self._max_pixels)
        if scale != 1.0:
            self._warn(
                "downscale", f"image {msg.width}x{msg.height} downscaled by {scale:.3f} (max_image_pixels)"
            )
        t1 = time.perf_counter()
        estimator, tracker = self._estimator, self._tracker
        detections = [
            d
            for d in estimator(image, K, camera.dist, encoding, distortion_model=camera.distortion_model)
            if float(d.confidence) >= self._min_score
            and (self._classes is None or d.class_name in self._classes)
        ]
        t2 = time.perf_counter()
        tracks = None if tracker is None else tracker.update(detections, stamp_ns * 1e-9)
        t3 = time.perf_counter()
        stages = {
            "convert": t1 - t0,
            **dict(estimator.last_timings),
            "estimate": t2 - t1,
            "tracking": t3 - t2,
        }
        header = Header(stamp=msg.header.stamp, frame_id=self._frame_id(msg))
        return _Result(detections, tracks, header, stamp_ns, image, encoding, camera, K, stages, t0)

    def _frame_id(self, msg: Image) -> str:
        """The image's frame id; an empty one gets a throttled warning and ``fallback_frame_id``."""
        frame_id = str(msg.header.frame_id)
        if frame_id:
            return frame_id
        fallback = self._fallback_frame_id
        what = (
            f"its outputs use fallback_frame_id '{fallback}'"
            if fallback
            else "its poses and detections keep the empty frame id and no TF is broadcast for it "
            "(set fallback_frame_id to the camera's optical frame)"
        )
        self._warn("frame_id", f"image on {self._image_sub.topic_name} has an empty header.frame_id: {what}")
        return fallback

    def _flush_outbox(self) -> None:
        """Guard-condition callback (executor thread): publish the worker's latest result."""
        with self._lock:
            result, self._outbox = self._outbox, None
        if result is not None:
            self._publish_result(result)

    def _publish_result(self, r: _Result) -> None:
        t2 = time.perf_counter()
        self._publish(r)
        t3 = time.perf_counter()
        stages = dict(r.stages, publish=t3 - t2, total=t3 - r.t_start)
        stages["stamp_to_publish"] = max(0.0, time.time() - r.stamp_ns * 1e-9)
        self._stats.record_frame(stages)

    def _publish(self, r: _Result) -> None:
        """Everything of one frame: poses (best track, or best detection without tracking), TF,
        ~/detections, ~/tracked, and the markers and overlay when someone listens.

        The markers sit where the TF frames are (tracked poses when TF names tracks); the overlay
        draws the network's own per-frame detections, the ones ~/detections carries.
        """
        detections, header = r.detections, r.header
        tracked = None if r.tracks is None else [trk.as_detection() for trk in r.tracks]
        best: dict[str, Any] = {}
        for det in detections if tracked is None else tracked:  # both sorted best first per class
            best.setdefault(det.class_name, det)
        for det in best.values():
            self._pose_pubs[det.class_name].publish(rm.pose_stamped(det, header))
        # TF and the rviz markers show the same poses: the tracks' filtered ones, or per frame.
        shown = tracked if tracked is not None and self._tf_frames == "tracks" else detections
        frames = rm.instance_frames(shown, self._tf_prefix)
        if self._publish_tf and self._tf_send is not None and frames and header.frame_id:
            self._tf_send([rm.transform_stamped(det, header, frame) for det, frame in frames])
        if self._detections_pub is not None:
            self._detections_pub.publish(self._detections_msg.build(detections, header, self._tf_prefix))
        if self._tracked_pub is not None and tracked is not None:
            self._tracked_pub.publish(self._tracked_msg.build(tracked, header, self._tf_prefix))
        if self._marker_pub.get_subscription_count() > 0:
            self._marker_pub.publish(
                rm.marker_array(
                    shown, header, self._keypoints_3d, colors=self._colors(), meshes=self._meshes()
                )
            )
        if self._overlay_pub.get_subscription_count() > 0:
            camera = r.camera
            drawn = rm.overlay_image(
                r.image,
                r.encoding,
                detections,
                self._keypoints_3d,
                K=r.K,
                dist=camera.dist,
                distortion_model=camera.distortion_model,
                colors=self._colors(),
            )
            self._overlay_pub.publish(rm.array_to_image_msg(drawn, "bgr8", header))

    def _colors(self) -> dict[str, tuple[float, float, float]]:
        if self._catalogue is None:
            return {}
        return {spec.name: tuple(spec.color) for spec in self._catalogue}

    def _meshes(self) -> dict[str, tuple[str, float]]:
        if self._catalogue is None:
            return {}
        return {
            spec.name: (Path(spec.mesh_path).resolve().as_uri(), MESH_UNITS[spec.mesh_units])
            for spec in self._catalogue
            if spec.mesh_path is not None
        }

    # ------------------------------------------------------------------ diagnostics

    def _report(self) -> None:
        snap = self._stats.snapshot()
        stages = ("convert", *STAGES[:-1], "tracking", "publish", "total", "stamp_to_publish")
        latency = ", ".join(f"{s} {snap[f'{s}_mean_ms']:.1f}" for s in stages if f"{s}_mean_ms" in snap)
        self.get_logger().info(
            f"{snap['fps']:.1f} fps, received {snap['received']}, processed {snap['processed']}, "
            f"dropped {snap['dropped']}, bad input {snap['bad_input']}, errors {snap['errors']}; "
            f"mean latency ms: {latency or 'n/a'}"
        )
        level = 1 if snap["errors"] or snap["bad_input"] else 0
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diag_pub.publish(
            rm.diagnostic_array(
                header, f"{self.get_name()}: pipeline", self._backend_name, values=snap, level=level
            )
        )

    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the node."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout=5.0)
        super().destroy_node()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(args: list[str] | None = None) -> int:
    """Entry point of ``hrpose_node``: exits 1 with one clear line (no traceback) when the
    parameters or the model are unusable."""
    transports = prefer_node_transports()
    rclpy.init(args=args)
    try:
        node = HRPoseNode()
    except (NodeConfigError, ModelLoadError, BundleError, ParameterException, ValueError, OSError) as exc:
        print(f"{NODE_NAME}: error: {_one_line(exc)}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    if transports is not None:
        node.get_logger().info(
            f"{TRANSPORTS_VARIABLE} was unset: Fast DDS uses {transports} (CameraInfo is lost "
            f"under load over shared memory; {TRANSPORTS_VARIABLE}=DEFAULT restores it)"
        )
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

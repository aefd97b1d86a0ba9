"""Pure converters between ROS messages and the runtime's numpy world (no Node here).

Incoming: ``sensor_msgs/Image`` -> (H, W, 3) uint8 array and ``sensor_msgs/CameraInfo``
-> ``CameraModel`` (K, distortion), each validated so that a bad message raises a
``BadInputError`` whose ``reason`` lets the node throttle its log line per cause.
Outgoing: PoseStamped, TransformStamped, vision_msgs Detection3DArray, rviz MarkerArray,
overlay Image and DiagnosticArray built from ``runtime.estimator.Detection`` objects.

The PyPI ``cv_bridge`` port is not used: its encoding table is wrong for 8-bit colour
(``rgb8`` maps to 9 channels) and ``cv2_to_imgmsg`` calls ``ndarray.tostring`` which
numpy 2 removed. Here the row ``step`` (padding) and the data length are checked, and
``runtime.encodings`` converts the pixels with cv_bridge's OpenCV conversions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseStamped, TransformStamped
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from hrpose_ros.geometry.camera import (
    DISTORTION_MODELS,
    CameraError,
    binned_roi_intrinsics,
    check_distortion,
    project_points,
    scale_intrinsics,
)
from hrpose_ros.geometry.draw import draw_axes, draw_cuboid
from hrpose_ros.geometry.keypoints import CUBOID_EDGES, NUM_CORNERS, Keypoint
from hrpose_ros.runtime.encodings import PIXEL_FORMATS, EncodingError, decode_image, pixel_format

if TYPE_CHECKING:
    from hrpose_ros.runtime.estimator import Detection

__all__ = [
    "SUPPORTED_ENCODINGS",
    "BadInputError",
    "CameraModel",
    "Detection3DArrayBuilder",
    "array_to_image_msg",
    "camera_from_info",
    "camera_info_msg",
    "check_resolution",
    "cuboid_box",
    "detection3d_array",
    "diagnostic_array",
    "downscale_to_fit",
    "image_to_array",
    "instance_frames",
    "marker_array",
    "overlay_image",
    "pose_msg",
    "pose_stamped",
    "rotation_to_quaternion",
    "transform_stamped",
]

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(PIXEL_FORMATS)
"""Image encodings the node accepts (``runtime.encodings.PIXEL_FORMATS``)."""


class BadInputError(ValueError):
    """A message the node cannot use; ``reason`` is a short key (for throttled logging).

    Reasons: ``encoding``, ``empty``, ``step``, ``data_length``, ``camera_info``,
    ``resolution``, ``no_camera_info``, ``stamp``.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------------- images in


def image_to_array(msg: Image) -> tuple[np.ndarray, str]:
    """Convert an Image message to an (H, W, 3) uint8 array the estimator takes.

    Every encoding of ``runtime.encodings.PIXEL_FORMATS`` is accepted (8-bit colour and
    mono, YUV 4:2:2, Bayer, 16-bit with ``is_bigendian`` honoured).

    Returns:
        (image, encoding): ``encoding`` is ``'rgb8'`` or ``'bgr8'``. rgb8/bgr8 come back
        as a read-only view of ``msg.data`` (no per-frame copy in the node's hot path;
        the view keeps the buffer alive); the other encodings are converted into a new array.

    Raises:
        BadInputError: unsupported encoding, zero size, ``step`` shorter than a row,
            ``data`` shorter than ``height * step``, or a size the format cannot have.
    """
    encoding = str(msg.encoding)
    try:
        fmt = pixel_format(encoding)
    except EncodingError as exc:
        raise BadInputError("encoding", str(exc)) from exc
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise BadInputError("empty", f"zero-size image ({width}x{height})")
    row_bytes = fmt.row_bytes(width)
    if step < row_bytes:
        raise BadInputError(
            "step",
            f"image step {step} is shorter than one row of {width} {encoding} pixels ({row_bytes} bytes)",
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < height * step:
        raise BadInputError(
            "data_length",
            f"image data has {data.size} bytes, fewer than height*step = {height}*{step} = {height * step}",
        )
    rows = data[: height * step].reshape(height, step)[:, :row_bytes]
    try:
        image, layout = decode_image(rows, width, encoding, bool(msg.is_bigendian))
    except EncodingError as exc:
        raise BadInputError("encoding", str(exc)) from exc
    if image.flags.writeable and np.may_share_memory(image, data):
        image.flags.writeable = False
    return image, layout


def downscale_to_fit(
    image: np.ndarray, K: np.ndarray, max_pixels: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Shrink an image (and its K) so that it has at most ``max_pixels`` pixels.

    Huge frames (a 12 MP still camera) would otherwise cost a large copy and resize per
    frame; poses are unchanged because K is scaled with the image (pixel-centre rule of
    ``geometry.camera.scale_intrinsics``). Distortion coefficients need no change.

    Returns:
        (image, K, scale): ``scale`` = new size / old size (1.0 when nothing changed).
    """
    height, width = image.shape[:2]
    if max_pixels <= 0 or height * width <= max_pixels:
        return image, K, 1.0
    scale = math.sqrt(max_pixels / float(height * width))
    new_w, new_h = max(1, int(width * scale)), max(1, int(height * scale))
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    K_small = scale_intrinsics(K, new_w / width, new_h / height)
    return small, K_small, new_w / width


# ---------------------------------------------------------------------------- camera in


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics the estimator needs, taken from one CameraInfo.

    ``K`` (3, 3) float64 pixels of the published image (binning and ROI applied);
    ``dist`` (N,) float64 coefficients of ``distortion_model`` or None; ``width`` /
    ``height`` the image size the CameraInfo describes (0 = not given by the driver);
    ``readout`` that size in words, for messages.
    """

    K: np.ndarray
    dist: np.ndarray | None
    width: int
    height: int
    distortion_model: str = "plumb_bob"
    readout: str = ""


def _readout(msg: CameraInfo) -> tuple[int, int, int, int, int, int]:
    """(x_offset, y_offset, width, height, binning_x, binning_y) of the image on the sensor.

    REP 104: binning 0 is 1, an all-zero ROI is the full sensor; the ROI is given in
    full-resolution (unbinned) pixels.
    """
    bx, by = max(1, int(msg.binning_x)), max(1, int(msg.binning_y))
    roi = msg.roi
    x, y, w, h = (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
    full_w, full_h = int(msg.width), int(msg.height)
    if (x, y, w, h) == (0, 0, 0, 0):
        return 0, 0, full_w, full_h, bx, by
    if w == 0 or h == 0:
        raise BadInputError("camera_info", f"CameraInfo roi {w}x{h}+{x}+{y} has an offset but no size")
    if full_w and full_h and (x + w > full_w or y + h > full_h):
        raise BadInputError(
            "camera_info", f"CameraInfo roi {w}x{h}+{x}+{y} does not fit the {full_w}x{full_h} sensor"
        )
    return x, y, w, h, bx, by


def camera_from_info(msg: CameraInfo, image_is_rectified: bool = False) -> CameraModel:
    """Intrinsics for images described by ``msg`` (REP 104).

    K (or P) is given for the full-resolution sensor: the ROI and the binning are
    applied to it (``geometry.camera.binned_roi_intrinsics``); D is unchanged.

    Args:
        msg: the CameraInfo.
        image_is_rectified: True when the subscribed image is ``image_rect`` (already
            undistorted and rectified): then the projection matrix ``P`` applies and
            there is no distortion. False for ``image_raw``: ``K`` with the ``D``
            coefficients of ``plumb_bob``, ``rational_polynomial`` or ``equidistant``.

    Raises:
        BadInputError (reason ``camera_info``): K or P zero or not finite, an unknown
            distortion model (or a coefficient count it does not have) with non-zero
            coefficients, or an ROI outside the sensor.
    """
    if image_is_rectified:
        P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4) if len(msg.p) == 12 else np.zeros((3, 4))
        K = P[:, :3].copy()
        dist, source = None, "P"
    else:
        K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3) if len(msg.k) == 9 else np.zeros((3, 3))
        dist, source = np.asarray(msg.d, dtype=np.float64).reshape(-1), "K"
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] == 0:
        raise BadInputError(
            "camera_info",
            f"CameraInfo {source} is invalid (zero or negative focal length, or not finite): "
            f"{K.ravel().tolist()}",
        )
    model = str(msg.distortion_model) or "plumb_bob"
    if dist is not None:
        if not np.all(np.isfinite(dist)):
            raise BadInputError("camera_info", f"CameraInfo D is not finite: {dist.tolist()}")
        if not np.any(dist):
            dist = None
        elif model not in DISTORTION_MODELS:
            raise BadInputError(
                "camera_info",
                f"CameraInfo distortion_model '{model}' is not supported "
                f"(use {', '.join(DISTORTION_MODELS)} or a rectified image)",
            )
    x, y, w, h, bx, by = _readout(msg)
    try:
        dist = check_distortion(dist, model) if dist is not None else None
        K = binned_roi_intrinsics(K / K[2, 2], x, y, bx, by)
    except CameraError as exc:
        raise BadInputError("camera_info", f"CameraInfo is unusable: {exc}") from exc
    size = f"{int(msg.width)}x{int(msg.height)}"
    if (x, y, bx, by) != (0, 0, 1, 1) or (w, h) != (int(msg.width), int(msg.height)):
        size += f" with ROI {w}x{h}+{x}+{y} and binning {bx}x{by}, i.e. {w // bx}x{h // by}"
    return CameraModel(K, dist, w // bx, h // by, model if dist is not None else "plumb_bob", size)


def check_resolution(camera: CameraModel, width: int, height: int) -> None:
    """Refuse an image whose size differs from the size its CameraInfo describes.

    Raises:
        BadInputError (reason ``resolution``). A CameraInfo with width = height = 0
        (size not given) is accepted.
    """
    if camera.width == 0 and camera.height == 0:
        return
    if (camera.width, camera.height) != (int(width), int(height)):
        described = camera.readout or f"{camera.width}x{camera.height}"
        raise BadInputError("resolution", f"image is {width}x{height} but its CameraInfo is {described}")


# ---------------------------------------------------------------------------- poses out


def rotation_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) quaternion of a (3, 3) rotation matrix (geometry_msgs order)."""
    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    return float(x), float(y), float(z), float(w)


def pose_msg(R: np.ndarray, t: np.ndarray) -> Pose:
    """Pose of an object: ``x_cam = R @ x_obj + t`` (t metres, camera optical frame)."""
    return _fill_pose(Pose(), rotation_to_quaternion(R), t)


def _fill_pose(pose: Pose, q: Sequence[float], t: np.ndarray) -> Pose:
    """Write an (x, y, z, w) quaternion and a translation into ``pose`` (in place: message
    construction is most of the cost of a Detection3DArray)."""
    tt = np.asarray(t, dtype=np.float64).reshape(3)
    p, o = pose.position, pose.orientation
    p.x, p.y, p.z = float(tt[0]), float(tt[1]), float(tt[2])
    o.x, o.y, o.z, o.w = float(q[0]), float(q[1]), float(q[2]), float(q[3])
    return pose


def pose_stamped(detection: Detection, header: Header) -> PoseStamped:
    """PoseStamped of one detection, in the image's frame and stamp."""
    return PoseStamped(header=header, pose=pose_msg(detection.R, detection.t))


def transform_stamped(detection: Detection, header: Header, child_frame_id: str) -> TransformStamped:
    """TF transform camera frame -> object frame (same numbers as ``pose_stamped``)."""
    pose = pose_msg(detection.R, detection.t)
    msg = TransformStamped()
    msg.header = header
    msg.child_frame_id = child_frame_id
    msg.transform.translation.x = pose.position.x
    msg.transform.translation.y = pose.position.y
    msg.transform.translation.z = pose.position.z
    msg.transform.rotation = pose.orientation
    return msg


def instance_frames(detections: Sequence[Detection], prefix: str = "") -> list[tuple[Detection, str]]:
    """Pair each detection with its TF child frame ``<prefix><class>_<i>``.

    ``i`` is the estimator's ``Detection.instance``: instances of a class numbered by
    confidence, so ``_0`` is the best one (the one on ``~/poses/<class>``).
    """
    return [(det, f"{prefix}{det.class_name}_{int(det.instance)}") for det in detections]


def cuboid_box(keypoints_3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (3,) and size (3,) in metres of a class's cuboid, object frame.

    Args:
        keypoints_3d: (9, 3) keypoints in ``Keypoint`` order.
    """
    kp = np.asarray(keypoints_3d, dtype=np.float64).reshape(-1, 3)
    corners = kp[:NUM_CORNERS]
    return kp[Keypoint.CENTROID].copy(), corners.max(axis=0) - corners.min(axis=0)


class Detection3DArrayBuilder:
    """Builds ``vision_msgs/Detection3DArray`` messages in place, frame after frame.

    For each instance: ``results[0].pose`` is the object pose (R, t); ``bbox.center`` is the
    pose of the cuboid's centre (the object origin need not be its centre); ``bbox.size``
    the cuboid's extent in metres; ``id`` the instance's TF child frame name.

    Why in place: constructing rosidl message objects (a Detection3D nests a dozen
    messages, each field checked by its setter) was most of the time a frame's
    ``~/tracked`` array took (``scripts/bench_tracking.py``). The builder keeps its
    array and one Detection3D per instance seen so far, and only writes numbers into them.
    ``build`` returns the builder's own message, which the next ``build`` overwrites:
    publish it first (rclpy serialises on ``publish``).
    """

    def __init__(self, keypoints_3d: Mapping[str, np.ndarray]) -> None:
        from vision_msgs.msg import (  # noqa: PLC0415 (optional: built from .msg files where not installed)
            Detection3D,
            Detection3DArray,
            ObjectHypothesisWithPose,
        )

        self._detection_type, self._hypothesis_type = Detection3D, ObjectHypothesisWithPose
        self._boxes = {name: cuboid_box(kp) for name, kp in keypoints_3d.items()}
        self._array = Detection3DArray()
        self._items: list[Any] = []

    def _item(self) -> Any:
        item = self._detection_type()
        item.results.append(self._hypothesis_type())
        return item

    def build(self, detections: Sequence[Detection], header: Header, frame_prefix: str = "") -> Any:
        """The array of ``detections`` (of classes given at construction), stamped ``header``."""
        while len(self._items) < len(detections):
            self._items.append(self._item())
        self._array.header = header
        if detections:
            rotations = np.array([d.R for d in detections], dtype=np.float64)
            quaternions = Rotation.from_matrix(rotations).as_quat()
            pairs = zip(self._items, instance_frames(detections, frame_prefix), quaternions, strict=False)
            for item, (det, frame), q in pairs:
                centre, size = self._boxes[det.class_name]
                t = np.asarray(det.t, dtype=np.float64).reshape(3)
                item.header = header
                hyp = item.results[0]
                hyp.hypothesis.class_id = str(det.class_name)
                hyp.hypothesis.score = float(det.confidence)
                _fill_pose(hyp.pose.pose, q, t)
                _fill_pose(item.bbox.center, q, det.R @ centre + t)
                item.bbox.size.x, item.bbox.size.y, item.bbox.size.z = (float(v) for v in size)
                item.id = frame
        self._array.detections = self._items[: len(detections)]
        return self._array


def detection3d_array(
    detections: Sequence[Detection],
    header: Header,
    keypoints_3d: Mapping[str, np.ndarray],
    frame_prefix: str = "",
) -> Any:
    """vision_msgs/Detection3DArray of ``detections``, a new message (see
    :class:`Detection3DArrayBuilder`, which the node uses to fill one in place)."""
    return Detection3DArrayBuilder(keypoints_3d).build(detections, header, frame_prefix)


def marker_array(
    detections: Sequence[Detection],
    header: Header,
    keypoints_3d: Mapping[str, np.ndarray],
    *,
    colors: Mapping[str, Sequence[float]] | None = None,
    meshes: Mapping[str, tuple[str, float]] | None = None,
    namespace: str = "hrpose",
) -> MarkerArray:
    """rviz markers: a DELETEALL first (so last frame's objects vanish), then per instance
    a cuboid LINE_LIST and, when the class has a mesh, a MESH_RESOURCE marker.

    Args:
        keypoints_3d: class name -> (9, 3) keypoints, object frame, metres.
        colors: class name -> (r, g, b) in 0..1 (default green).
        meshes: class name -> (resource URI such as ``file:///abs/mesh.ply``, scale to metres).
    """
    colors = colors or {}
    meshes = meshes or {}
    out = MarkerArray()
    clear = Marker(header=header, ns=namespace, id=0, action=Marker.DELETEALL)
    out.markers.append(clear)
    for n, (det, _frame) in enumerate(instance_frames(detections)):
        r, g, b = (float(v) for v in colors.get(det.class_name, (0.0, 1.0, 0.0)))
        box = Marker(header=header, ns=f"{namespace}/cuboid", id=n, type=Marker.LINE_LIST, action=Marker.ADD)
        box.pose = pose_msg(det.R, det.t)
        box.scale.x = 0.003
        box.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        corners = np.asarray(keypoints_3d[det.class_name], dtype=np.float64)[:NUM_CORNERS]
        for a, c in CUBOID_EDGES:
            box.points.append(Point(x=float(corners[a, 0]), y=float(corners[a, 1]), z=float(corners[a, 2])))
            box.points.append(Point(x=float(corners[c, 0]), y=float(corners[c, 1]), z=float(corners[c, 2])))
        out.markers.append(box)
        if det.class_name in meshes:
            uri, scale = meshes[det.class_name]
            mesh = Marker(header=header, ns=f"{namespace}/mesh", id=n, type=Marker.MESH_RESOURCE)
            mesh.action = Marker.ADD
            mesh.pose = box.pose
            mesh.scale.x = mesh.scale.y = mesh.scale.z = float(scale)
            mesh.color = ColorRGBA(r=r, g=g, b=b, a=0.6)
            mesh.mesh_resource = uri
            out.markers.append(mesh)
    return out


# ---------------------------------------------------------------------------- images out


def overlay_image(
    image: np.ndarray,
    encoding: str,
    detections: Sequence[Detection],
    keypoints_3d: Mapping[str, np.ndarray],
    *,
    K: np.ndarray,
    dist: np.ndarray | None = None,
    distortion_model: str = "plumb_bob",
    colors: Mapping[str, Sequence[float]] | None = None,
) -> np.ndarray:
    """A BGR copy of ``image`` with each detection's cuboid projected from its pose, plus axes.

    The cuboid is drawn from (R, t) and the class's 3D keypoints, not from the network's
    2D keypoints, so the overlay shows what the published pose means.

    Args:
        image: (H, W, 3) uint8 in ``encoding`` (rgb8 or bgr8); not modified.
        keypoints_3d: class name -> (9, 3) metres; K (3, 3), dist and distortion_model of ``image``.
        colors: class name -> (r, g, b) in 0..1 (default green).

    Returns:
        (H, W, 3) uint8 bgr8 image.
    """
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if encoding == "rgb8" else image.copy()
    colors = colors or {}
    for det in detections:
        pts = np.asarray(keypoints_3d[det.class_name], dtype=np.float64)
        uv = project_points(pts, det.R, det.t, K, dist, model=distortion_model)
        r, g, b = (float(v) for v in colors.get(det.class_name, (0.0, 1.0, 0.0)))
        draw_cuboid(canvas, uv, (int(255 * b), int(255 * g), int(255 * r)), thickness=2)
        _, size = cuboid_box(pts)
        draw_axes(canvas, det.R, det.t, K, length=0.5 * float(np.min(size)), thickness=2)
    return canvas


def array_to_image_msg(image: np.ndarray, encoding: str, header: Header) -> Image:
    """Image message of an (H, W, 3) uint8 array (``encoding`` rgb8 or bgr8)."""
    arr = np.ascontiguousarray(image, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"array_to_image_msg needs (H, W, 3) uint8 rgb8/bgr8, got {arr.shape} {encoding}")
    msg = Image(header=header, height=arr.shape[0], width=arr.shape[1], encoding=encoding)
    msg.is_bigendian = 0
    msg.step = arr.shape[1] * 3
    msg.data = arr.tobytes()
    return msg


def camera_info_msg(
    K: np.ndarray, width: int, height: int, header: Header, dist: np.ndarray | None = None
) -> CameraInfo:
    """CameraInfo for an unrectified pinhole camera (P = [K | 0], R = I)."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    msg = CameraInfo(header=header, width=int(width), height=int(height))
    msg.distortion_model = "plumb_bob"
    msg.d = [float(v) for v in (np.zeros(5) if dist is None else np.asarray(dist).reshape(-1))]
    msg.k = [float(v) for v in K.ravel()]
    msg.r = [float(v) for v in np.eye(3).ravel()]
    msg.p = [float(v) for v in np.hstack([K, np.zeros((3, 1))]).ravel()]
    return msg


# ---------------------------------------------------------------------------- diagnostics


def diagnostic_array(
    header: Header,
    name: str,
    hardware_id: str,
    *,
    values: Mapping[str, float | int | str],
    level: int = 0,
    message: str = "ok",
) -> DiagnosticArray:
    """DiagnosticArray with one status (``level`` 0 OK, 1 WARN, 2 ERROR) and key/values."""
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, message=message)
    status.level = bytes([level]) if isinstance(DiagnosticStatus().level, bytes) else level
    status.values = [KeyValue(key=str(k), value=_format_value(v)) for k, v in values.items()]
    return DiagnosticArray(header=header, status=[status])


def _format_value(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)

"""Pure message builders and converters of the node, tested without spinning ROS."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from hrpose_ros.geometry.camera import binned_roi_intrinsics, project_points
from hrpose_ros.geometry.keypoints import CUBOID_EDGES, cuboid_keypoints
from hrpose_ros.ros import ros_messages as rm
from hrpose_ros.runtime.encodings import encode_image
from hrpose_ros.runtime.estimator import Detection

K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
BOX = cuboid_keypoints(np.array([-0.05, -0.03, -0.02]), np.array([0.05, 0.03, 0.04]))


def _header() -> Header:
    h = Header(frame_id="camera_optical")
    h.stamp.sec, h.stamp.nanosec = 12, 345_000_000
    return h


def _detection(name="box", instance=0, confidence=0.9, seed=0) -> Detection:
    rng = np.random.default_rng(seed)
    R = Rotation.from_rotvec(rng.normal(size=3) * 0.5).as_matrix()
    t = np.array([0.02, -0.01, 0.6]) + rng.normal(size=3) * 0.01
    return Detection(
        class_name=name,
        class_id=1,
        class_index=0,
        instance=instance,
        R=R,
        t=t,
        confidence=confidence,
        keypoints_2d=project_points(BOX, R, t, K),
        reprojection_error_px=0.1,
        num_points=9,
    )


def _image_msg(array: np.ndarray, encoding: str, pad: int = 0) -> Image:
    h, w = array.shape[:2]
    rows = array.reshape(h, -1)
    padded = np.zeros((h, rows.shape[1] + pad), np.uint8)
    padded[:, : rows.shape[1]] = rows
    return Image(height=h, width=w, encoding=encoding, step=padded.shape[1], data=padded.tobytes())


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(6, 7, 3), dtype=np.uint8)


# ------------------------------------------------------------------ images in


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_three_channel_image_converts_unchanged(rgb, encoding):
    out, enc = rm.image_to_array(_image_msg(rgb, encoding))
    assert enc == encoding
    np.testing.assert_array_equal(out, rgb)


def test_three_channel_image_is_a_read_only_view_of_the_message_data(rgb):
    msg = _image_msg(rgb, "bgr8", pad=3)
    out, _ = rm.image_to_array(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))  # no per-frame copy
    assert not out.flags.writeable  # the message's pixels cannot be changed through it


@pytest.mark.parametrize("encoding", ["rgba8", "bgra8"])
def test_alpha_channel_is_dropped(rgb, encoding):
    alpha = np.full((*rgb.shape[:2], 1), 77, np.uint8)
    out, enc = rm.image_to_array(_image_msg(np.concatenate([rgb, alpha], axis=2), encoding))
    assert enc == encoding[:3] + "8"
    np.testing.assert_array_equal(out, rgb)


def test_mono_image_becomes_three_equal_channels(rgb):
    grey = rgb[:, :, 0].copy()
    out, enc = rm.image_to_array(_image_msg(grey, "mono8"))
    assert enc == "bgr8"
    assert out.shape == (*grey.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_row_padding_in_step_is_skipped(rgb):
    out, _ = rm.image_to_array(_image_msg(rgb, "rgb8", pad=5))
    np.testing.assert_array_equal(out, rgb)


def test_unsupported_encoding_names_it(rgb):
    msg = _image_msg(rgb, "rgb8")
    msg.encoding = "nv21"
    with pytest.raises(rm.BadInputError, match="'nv21'") as info:
        rm.image_to_array(msg)
    assert info.value.reason == "encoding"


@pytest.mark.parametrize("big_endian", [0, 1])
def test_sixteen_bit_image_honours_is_bigendian_and_step_padding(rgb, big_endian):
    bgr = rgb  # any 8-bit colour image
    rows = encode_image(bgr, "rgb16", bool(big_endian))
    msg = _image_msg(rows.reshape(6, 7, 6), "rgb16", pad=4)
    msg.is_bigendian = big_endian
    out, enc = rm.image_to_array(msg)
    assert enc == "rgb8"
    np.testing.assert_array_equal(out, bgr[:, :, ::-1])
    msg.is_bigendian = 1 - big_endian
    assert not np.array_equal(rm.image_to_array(msg)[0], out)


def test_yuv422_image_of_odd_width_is_refused_naming_the_reason(rgb):
    msg = _image_msg(np.zeros((6, 7, 2), np.uint8), "yuv422")
    with pytest.raises(rm.BadInputError, match="even width") as info:
        rm.image_to_array(msg)
    assert info.value.reason == "encoding"


def test_step_shorter_than_a_sixteen_bit_row_is_refused(rgb):
    msg = _image_msg(np.zeros((6, 7, 6), np.uint8), "bgr16")
    msg.step = 7 * 3  # the 8-bit row length: half of what bgr16 needs
    with pytest.raises(rm.BadInputError, match="42 bytes") as info:
        rm.image_to_array(msg)
    assert info.value.reason == "step"


def test_short_data_is_refused(rgb):
    msg = _image_msg(rgb, "rgb8")
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(rm.BadInputError, match="height\\*step") as info:
        rm.image_to_array(msg)
    assert info.value.reason == "data_length"


def test_zero_size_image_is_refused():
    with pytest.raises(rm.BadInputError, match="zero-size") as info:
        rm.image_to_array(Image(height=0, width=0, encoding="rgb8", step=0))
    assert info.value.reason == "empty"


def test_step_shorter_than_a_row_is_refused(rgb):
    msg = _image_msg(rgb, "rgb8")
    msg.step = 7 * 3 - 1
    with pytest.raises(rm.BadInputError) as info:
        rm.image_to_array(msg)
    assert info.value.reason == "step"


def test_image_round_trips_through_a_message(rgb):
    msg = rm.array_to_image_msg(rgb, "bgr8", _header())
    assert (msg.height, msg.width, msg.step) == (6, 7, 21)
    out, enc = rm.image_to_array(msg)
    assert enc == "bgr8"
    np.testing.assert_array_equal(out, rgb)


def test_huge_image_is_downscaled_with_its_intrinsics():
    image = np.zeros((300, 400, 3), np.uint8)
    K_big = np.array([[400.0, 0, 199.5], [0, 400.0, 149.5], [0, 0, 1]])
    small, K_small, scale = rm.downscale_to_fit(image, K_big, max_pixels=100 * 75)
    assert small.shape == (75, 100, 3)
    assert scale == pytest.approx(0.25)
    pts = BOX + np.array([0.0, 0.0, 0.5])
    uv_big = project_points(pts, np.eye(3), np.zeros(3), K_big)
    uv_small = project_points(pts, np.eye(3), np.zeros(3), K_small)
    np.testing.assert_allclose(uv_small, (uv_big + 0.5) * 0.25 - 0.5, atol=1e-9)


def test_small_image_is_not_resized():
    image = np.zeros((30, 40, 3), np.uint8)
    out, K_out, scale = rm.downscale_to_fit(image, K, max_pixels=1200)
    assert out is image and K_out is K and scale == 1.0


# ------------------------------------------------------------------ camera in


def _info(**fields) -> CameraInfo:
    info = rm.camera_info_msg(K, 640, 480, _header())
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_camera_info_round_trip_gives_k_and_no_distortion():
    cam = rm.camera_from_info(_info())
    np.testing.assert_allclose(cam.K, K)
    assert cam.dist is None
    assert (cam.width, cam.height) == (640, 480)


def test_raw_image_uses_k_and_d():
    d = [0.1, -0.05, 0.001, 0.002, 0.0]
    cam = rm.camera_from_info(_info(d=d, p=[0.0] * 12), image_is_rectified=False)
    np.testing.assert_allclose(cam.dist, d)
    np.testing.assert_allclose(cam.K, K)


def test_rectified_image_uses_p_and_ignores_d():
    P = np.array([[450.0, 0, 300.0, 0.0], [0, 455.0, 230.0, 0.0], [0, 0, 1, 0]])
    cam = rm.camera_from_info(_info(d=[0.1, 0.0, 0.0, 0.0, 0.0], p=list(P.ravel())), image_is_rectified=True)
    np.testing.assert_allclose(cam.K, P[:, :3])
    assert cam.dist is None


@pytest.mark.parametrize("k", [[0.0] * 9, [float("nan"), *list(K.ravel()[1:])]])
def test_zero_or_nan_k_is_refused(k):
    with pytest.raises(rm.BadInputError, match="CameraInfo K") as info:
        rm.camera_from_info(_info(k=k))
    assert info.value.reason == "camera_info"


def test_nan_distortion_is_refused():
    with pytest.raises(rm.BadInputError, match="D is not finite"):
        rm.camera_from_info(_info(d=[float("nan")] * 5))


def test_unknown_distortion_model_with_coefficients_is_refused():
    with pytest.raises(rm.BadInputError, match=r"'fov' is not supported.*equidistant") as info:
        rm.camera_from_info(_info(distortion_model="fov", d=[0.1, 0.0, 0.0, 0.0]))
    assert info.value.reason == "camera_info"


def test_equidistant_camera_info_gives_the_fisheye_model():
    cam = rm.camera_from_info(_info(distortion_model="equidistant", d=[0.1, -0.01, 0.002, 0.0]))
    assert cam.distortion_model == "equidistant"
    np.testing.assert_allclose(cam.dist, [0.1, -0.01, 0.002, 0.0])


def test_equidistant_with_five_coefficients_is_refused():
    with pytest.raises(rm.BadInputError, match="4 coefficients") as info:
        rm.camera_from_info(_info(distortion_model="equidistant", d=[0.1, 0.0, 0.0, 0.0, 0.0]))
    assert info.value.reason == "camera_info"


def _readout_info(roi=(0, 0, 0, 0), binning=(0, 0), **fields) -> CameraInfo:
    """CameraInfo with roi = (x_offset, y_offset, width, height) and binning = (x, y)."""
    info = _info(binning_x=binning[0], binning_y=binning[1], **fields)
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = roi
    return info


@pytest.mark.parametrize("rectified", [False, True])
def test_binning_and_roi_are_applied_to_k_and_p(rectified):
    P = np.hstack([K * 1.01, np.zeros((3, 1))])
    P[2, 2] = 1.0
    info = _readout_info((100, 60, 320, 240), (2, 2), p=list(P.ravel()), d=[0.1, 0.0, 0.0, 0.0, 0.0])
    cam = rm.camera_from_info(info, image_is_rectified=rectified)
    full = P[:, :3] if rectified else K
    np.testing.assert_allclose(cam.K, binned_roi_intrinsics(full, 100, 60, 2, 2))
    assert (cam.width, cam.height) == (160, 120)
    if not rectified:
        np.testing.assert_allclose(cam.dist, [0.1, 0.0, 0.0, 0.0, 0.0])  # D unchanged


def test_binning_zero_is_one_and_an_all_zero_roi_is_the_full_sensor():
    cam = rm.camera_from_info(_readout_info())
    np.testing.assert_allclose(cam.K, K)
    assert (cam.width, cam.height) == (640, 480)


def test_binned_half_size_image_passes_the_resolution_check_and_full_size_does_not():
    cam = rm.camera_from_info(_readout_info(binning=(2, 2)))
    rm.check_resolution(cam, 320, 240)
    with pytest.raises(
        rm.BadInputError, match=r"640x480 with ROI 640x480\+0\+0 and binning 2x2, i\.e\. 320x240"
    ):
        rm.check_resolution(cam, 640, 480)


@pytest.mark.parametrize(
    ("roi", "fragment"),
    [((600, 0, 100, 100), "does not fit the 640x480 sensor"), ((10, 10, 0, 0), "has an offset but no size")],
)
def test_bad_roi_is_refused(roi, fragment):
    with pytest.raises(rm.BadInputError, match=fragment) as info:
        rm.camera_from_info(_readout_info(roi))
    assert info.value.reason == "camera_info"


def test_resolution_mismatch_is_refused():
    cam = rm.camera_from_info(_info())
    rm.check_resolution(cam, 640, 480)
    with pytest.raises(rm.BadInputError, match="320x240") as info:
        rm.check_resolution(cam, 320, 240)
    assert info.value.reason == "resolution"


# ------------------------------------------------------------------ poses out


def test_quaternion_is_xyzw_of_the_rotation():
    R = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    np.testing.assert_allclose(rm.rotation_to_quaternion(R), [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)


def test_pose_stamped_carries_pose_and_header():
    det = _detection()
    msg = rm.pose_stamped(det, _header())
    assert msg.header.frame_id == "camera_optical"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345_000_000)
    p, q = msg.pose.position, msg.pose.orientation
    np.testing.assert_allclose([p.x, p.y, p.z], det.t)
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), det.R, atol=1e-12)


def test_transform_equals_pose():
    det = _detection(seed=3)
    pose = rm.pose_stamped(det, _header()).pose
    tf = rm.transform_stamped(det, _header(), "hrpose/box_0")
    assert tf.child_frame_id == "hrpose/box_0"
    assert tf.header.frame_id == "camera_optical"
    tr, rot = tf.transform.translation, tf.transform.rotation
    assert (tr.x, tr.y, tr.z) == (pose.position.x, pose.position.y, pose.position.z)
    assert (rot.x, rot.y, rot.z, rot.w) == (
        pose.orientation.x,
        pose.orientation.y,
        pose.orientation.z,
        pose.orientation.w,
    )


def test_instance_frames_use_prefix_class_and_instance():
    dets = [_detection("box", 0), _detection("box", 1, 0.5), _detection("can", 0)]
    names = [name for _, name in rm.instance_frames(dets, "hrpose/")]
    assert names == ["hrpose/box_0", "hrpose/box_1", "hrpose/can_0"]


def test_cuboid_box_gives_centre_and_size():
    centre, size = rm.cuboid_box(BOX)
    np.testing.assert_allclose(centre, [0.0, 0.0, 0.01])
    np.testing.assert_allclose(size, [0.1, 0.06, 0.06])


def test_markers_start_with_deleteall_and_draw_twelve_edges():
    dets = [_detection(seed=1), _detection(instance=1, seed=2)]
    out = rm.marker_array(dets, _header(), {"box": BOX})
    assert out.markers[0].action == Marker.DELETEALL
    boxes = out.markers[1:]
    assert [m.type for m in boxes] == [Marker.LINE_LIST, Marker.LINE_LIST]
    assert len({(m.ns, m.id) for m in boxes}) == 2
    assert len(boxes[0].points) == 2 * len(CUBOID_EDGES)
    a, b = CUBOID_EDGES[0]
    assert (boxes[0].points[0].x, boxes[0].points[1].x) == (BOX[a, 0], BOX[b, 0])


def test_mesh_marker_only_for_classes_with_a_mesh():
    dets = [_detection("box"), _detection("can")]
    keypoints = {"box": BOX, "can": BOX}
    out = rm.marker_array(dets, _header(), keypoints, meshes={"can": ("file:///tmp/can.ply", 0.001)})
    meshes = [m for m in out.markers if m.type == Marker.MESH_RESOURCE]
    assert len(meshes) == 1
    assert meshes[0].mesh_resource == "file:///tmp/can.ply"
    assert meshes[0].scale.x == pytest.approx(0.001)


def test_overlay_draws_the_projected_cuboid_in_bgr():
    det = _detection(seed=4)
    image = np.zeros((480, 640, 3), np.uint8)
    out = rm.overlay_image(image, "rgb8", [det], {"box": BOX}, K=K, colors={"box": (1.0, 0.0, 0.0)})
    assert not image.any()
    u, v = np.round(project_points(BOX, det.R, det.t, K)[0]).astype(int)
    patch = out[v - 2 : v + 3, u - 2 : u + 3].reshape(-1, 3)
    assert (patch[:, 2] == 255).any()


def test_diagnostics_hold_one_status_with_values():
    msg = rm.diagnostic_array(
        _header(), "hrpose: pipeline", "onnxruntime", values={"fps": 12.5, "dropped": 3}
    )
    status = msg.status[0]
    assert status.name == "hrpose: pipeline"
    assert {kv.key: kv.value for kv in status.values} == {"fps": "12.500", "dropped": "3"}


@pytest.mark.skipif(importlib.util.find_spec("vision_msgs") is None, reason="vision_msgs is not installed")
def test_detection3d_array_has_class_score_pose_and_box():
    det = _detection(seed=5)
    out = rm.detection3d_array([det], _header(), {"box": BOX}, "hrpose/")
    assert out.header.frame_id == "camera_optical"
    (item,) = out.detections
    hyp = item.results[0]
    assert hyp.hypothesis.class_id == "box"
    assert hyp.hypothesis.score == pytest.approx(0.9)
    np.testing.assert_allclose([hyp.pose.pose.position.z], [det.t[2]])
    centre = det.R @ np.array([0.0, 0.0, 0.01]) + det.t
    c = item.bbox.center.position
    np.testing.assert_allclose([c.x, c.y, c.z], centre, atol=1e-12)
    np.testing.assert_allclose([item.bbox.size.x, item.bbox.size.y, item.bbox.size.z], [0.1, 0.06, 0.06])
    assert item.id == "hrpose/box_0"


@pytest.mark.skipif(importlib.util.find_spec("vision_msgs") is None, reason="vision_msgs is not installed")
def test_the_in_place_builder_gives_each_frame_exactly_a_new_arrays_content():
    """Reused messages must not leak the last frame: more, then fewer instances, other poses."""
    builder = rm.Detection3DArrayBuilder({"box": BOX})
    frames = [
        [_detection(seed=1)],
        [_detection(seed=2), _detection(instance=1, confidence=0.4, seed=3), _detection(instance=2, seed=4)],
        [_detection(instance=0, confidence=0.7, seed=5)],
        [],
    ]
    for dets in frames:
        header = _header()
        header.stamp.sec = len(dets)
        got = builder.build(dets, header, "p/")
        want = rm.detection3d_array(dets, header, {"box": BOX}, "p/")
        assert got == want  # rosidl messages compare field by field
        assert len(got.detections) == len(dets) and got.header.stamp.sec == len(dets)

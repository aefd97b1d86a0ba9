"""What real camera drivers publish, through the running node over real DDS.

One ``hrpose_node`` process (fixture model, ONNX Runtime, default parameters) serves the
module; this process publishes each camera format and CameraInfo layout and compares the
node's ``~/detections`` with the offline estimator.

Encodings: the fixture model, fitted to 6 frames, moves its detections by centimetres
when a few pixels change by one grey level, so a format that loses information (YUV
4:2:2 halves the chroma, a Bayer mosaic keeps one colour per pixel) would test the model
rather than the conversion. Each encoding is therefore published from a bgr8 frame the
format holds exactly: the fixed point of encode -> decode, reached in a few rounds (the
frame itself for the lossless formats, its grey version for mono), and the node must
give exactly the offline detections of that bgr8 frame. ``test_encodings.py`` checks the
decoded pixels of ordinary images against layouts written by hand.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from node_fixtures import (  # noqa: E402
    FIXTURE_MODEL,
    TFMessage,
    assert_same_detections,
    expect_log,
    header,
    module_fixtures,
    offline_estimator,
    processed,
    wait_for,
)
from node_fixtures import domain_id as _domain_id  # noqa: E402

from hrpose_ros.geometry.camera import project_points, scale_intrinsics  # noqa: E402
from hrpose_ros.ros.player import frame_messages  # noqa: E402
from hrpose_ros.ros.ros_messages import camera_info_msg  # noqa: E402
from hrpose_ros.runtime.encodings import PIXEL_FORMATS, decode_image, encode_image  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = _domain_id(1)
FISHEYE_D = [0.05, -0.01, 0.002, 0.0005]

if not FIXTURE_MODEL.is_file():
    pytest.skip("fixture model missing: run scripts/make_fixture_model.py", allow_module_level=True)


# reliable: a 16-bit RGBA frame (600 kB) is fragmented by Fast DDS, and a best-effort
# reader drops a sample whole when one fragment is lost on a loaded machine
node, observer, good_frame = module_fixtures("cameras", DOMAIN_ID, "-p", "qos_reliability:=reliable")


@pytest.fixture(scope="module")
def estimator():
    return offline_estimator()


@pytest.fixture(scope="module")
def camera(good_frame, estimator):
    """The good frame (BGR, K) and the offline estimator it is compared with."""
    return good_frame, estimator


def _held_exactly(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """The bgr8 frame near ``bgr`` that ``encoding`` represents exactly (encode -> decode fixed point)."""
    frame = bgr
    for _ in range(20):
        image, layout = decode_image(encode_image(frame, encoding), frame.shape[1], encoding)
        again = image if layout == "bgr8" else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if np.array_equal(again, frame):
            return frame
        frame = again
    raise AssertionError(f"{encoding}: encode -> decode has no fixed point near the frame")


CASES = [(e, False) for e in PIXEL_FORMATS] + [(e, True) for e in ("rgb16", "bgra16", "mono16")]


@pytest.mark.parametrize(
    ("encoding", "big_endian"), CASES, ids=[e + ("_big_endian" if big else "") for e, big in CASES]
)
def test_every_encoding_gives_the_detections_of_its_bgr8_frame(node, observer, camera, encoding, big_endian):
    (bgr, K), estimator = camera
    source = _held_exactly(bgr, encoding)
    expected = estimator(source, K, None, "bgr8")
    assert expected, f"the fixture model finds nothing in the {encoding} version of the frame"
    stamp = processed(observer, lambda s: frame_messages(source, K, header(s), encoding, big_endian))
    assert_same_detections(observer.detections[stamp], expected)


def _sensor_info(K: np.ndarray, stamp_ns: int, size: tuple[int, int], binning: int, roi=None):
    """CameraInfo of the full-resolution sensor whose ROI (x, y) of the image size × binning,
    binned, is an image with intrinsics K (REP 104: K, P and width/height are the sensor's)."""
    w, h = size
    x, y = roi or (0, 0)
    K_sensor = scale_intrinsics(K, binning, binning)
    K_sensor[0, 2] += x
    K_sensor[1, 2] += y
    sensor_w, sensor_h = (w * binning + 2 * x, h * binning + 2 * y)
    info = camera_info_msg(K_sensor, sensor_w, sensor_h, header(stamp_ns))
    info.binning_x = info.binning_y = binning
    if roi is not None:
        info.roi.x_offset, info.roi.y_offset = x, y
        info.roi.width, info.roi.height = w * binning, h * binning
    return info


@pytest.mark.parametrize(
    ("binning", "roi"),
    [(2, None), (1, (40, 30)), (2, (60, 40)), (3, (7, 5))],
    ids=["bin2", "roi", "roi_bin2", "roi_bin3"],
)
def test_binning_and_roi_give_the_poses_of_the_full_resolution_camera(node, observer, camera, binning, roi):
    """The image is a binned window of a larger sensor; its CameraInfo describes the sensor."""
    (bgr, K), estimator = camera
    h, w = bgr.shape[:2]

    def messages(stamp):
        image, _ = frame_messages(bgr, K, header(stamp))
        return image, _sensor_info(K, stamp, (w, h), binning, roi)

    stamp = processed(observer, messages)
    assert_same_detections(observer.detections[stamp], estimator(bgr, K, None, "bgr8"))


def test_a_binned_half_size_image_gives_the_poses_of_the_full_frame(node, observer, good_frame, estimator):
    """The issue's case: a 2x2-binned image (half size) with the full-resolution CameraInfo."""
    bgr, K = good_frame
    h, w = bgr.shape[:2]
    half = cv2.resize(bgr, (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # 2x2 binning: the mean of 4

    def messages(stamp):
        image, _ = frame_messages(half, K, header(stamp))
        info = camera_info_msg(K, w, h, header(stamp))
        info.binning_x = info.binning_y = 2
        return image, info

    stamp = processed(observer, messages)
    assert_same_detections(observer.detections[stamp], estimator(bgr, K, None, "bgr8"), atol=1e-3)


def test_a_full_size_image_with_a_binned_camera_info_is_refused_naming_the_binning(
    node, observer, good_frame
):
    bgr, K = good_frame
    h, w = bgr.shape[:2]

    def publish_bad():
        image, info = frame_messages(bgr, K, header(time.time_ns()))
        info.binning_x = info.binning_y = 2
        observer.info_pub.publish(info)
        observer.image_pub.publish(image)

    expect_log(node, f"with ROI {w}x{h}+0+0 and binning 2x2, i.e. {w // 2}x{h // 2}", publish_bad)


def test_an_equidistant_camera_info_gives_the_fisheye_poses(node, observer, good_frame, estimator):
    bgr, K = good_frame

    def messages(stamp):
        image, info = frame_messages(bgr, K, header(stamp))
        info.distortion_model, info.d = "equidistant", FISHEYE_D
        return image, info

    stamp = processed(observer, messages)
    fisheye = estimator(bgr, K, np.array(FISHEYE_D), "bgr8", distortion_model="equidistant")
    assert_same_detections(observer.detections[stamp], fisheye)
    pinhole = {(d.class_name, d.instance): d.t for d in estimator(bgr, K, None, "bgr8")}
    moved = [
        np.abs(d.t - pinhole[(d.class_name, d.instance)]).max()
        for d in fisheye
        if (d.class_name, d.instance) in pinhole
    ]
    assert max(moved) > 1e-4  # the lens model did change the poses: the comparison is not vacuous
    # and the model is the fisheye one: the node's pose reprojects onto the found keypoints through it
    det = fisheye[0]
    uv = project_points(
        estimator.bundle.keypoints_3d[det.class_index], det.R, det.t, K, FISHEYE_D, model="equidistant"
    )
    found = np.isfinite(det.keypoints_2d).all(axis=1)
    assert (
        np.sqrt(np.mean(np.sum((uv[found] - det.keypoints_2d[found]) ** 2, axis=1)))
        < 2 * det.reprojection_error_px + 1.0
    )


def _tf_parents(observer, stamp: int) -> set[str]:
    return {t.header.frame_id for t in observer.tf_at(stamp).values()}


@pytest.mark.skipif(TFMessage is None, reason="tf2_msgs is not installed")
def test_an_empty_frame_id_is_warned_about_and_gets_no_tf_unless_a_fallback_is_set(
    node, observer, good_frame
):
    bgr, K = good_frame
    assert all(r.successful for r in observer.set_parameters(tf_frames="detections"))  # TF at once
    try:
        named = processed(observer, lambda s: frame_messages(bgr, K, header(s)))
        assert wait_for(lambda: _tf_parents(observer, named) == {"fixture_cam"}, 3.0)  # the control

        def unnamed(stamp):
            return frame_messages(bgr, K, header(stamp, frame_id=""))

        stamp = processed(observer, unnamed)
        assert observer.detections[stamp].header.frame_id == ""
        assert observer.detections[stamp].detections  # processed, not dropped
        expect_log(node, "has an empty header.frame_id", lambda: processed(observer, unnamed), dropped=False)
        time.sleep(1.0)
        assert _tf_parents(observer, stamp) == set()  # tf2 refuses an empty parent: none is sent

        assert all(r.successful for r in observer.set_parameters(fallback_frame_id="fallback_cam"))
        stamp = processed(observer, unnamed)
        assert observer.detections[stamp].header.frame_id == "fallback_cam"
        assert wait_for(lambda: _tf_parents(observer, stamp) == {"fallback_cam"}, 3.0)
    finally:
        observer.set_parameters(tf_frames="tracks", fallback_frame_id="")
    assert node.proc.poll() is None

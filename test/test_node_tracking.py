"""Tracking in the running node over real DDS: ~/tracked, TF names from track ids, ~/poses, the off switch.

One ``hrpose_node`` process (fixture model, default parameters: tracking on, TF frames from
tracks) serves the module. The good fixture frame is published again and again with new
stamps: the same objects in the same places, so every detection keeps its track. The
tracker's accuracy on moving, noisy objects is tested on synthetic streams in
``test_tracking.py``; this module checks what the node makes of the tracker's output.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from node_fixtures import (  # noqa: E402
    FIXTURE_MODEL,
    TF_PREFIX,
    TFMessage,
    assert_pose_equal,
    header,
    module_fixtures,
    offline_estimator,
    processed,
    wait_for,
)
from node_fixtures import domain_id as _domain_id  # noqa: E402

from hrpose_ros.ros.player import frame_messages  # noqa: E402
from hrpose_ros.ros.stamp_matcher import stamp_to_ns  # noqa: E402
from hrpose_ros.runtime.tracking import TrackerParams  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOMAIN_ID = _domain_id(2)
MIN_HITS = TrackerParams().min_hits

if not FIXTURE_MODEL.is_file():
    pytest.skip("fixture model missing: run scripts/make_fixture_model.py", allow_module_level=True)


node, observer, good_frame = module_fixtures("tracking", DOMAIN_ID)


def _play(observer, good_frame, count: int) -> list[int]:
    """Publish the good frame ``count`` times (each answered on ~/detections); the stamps."""
    bgr, K = good_frame
    return [processed(observer, lambda s: frame_messages(bgr, K, header(s))) for _ in range(count)]


def _tracked(observer, stamp: int) -> dict[str, object]:
    assert wait_for(lambda: stamp in observer.tracked, 3.0), "no ~/tracked for the frame"
    return {d.id: d for d in observer.tracked[stamp].detections}


def test_tracks_keep_their_ids_and_name_the_tf_frames(node, observer, good_frame):
    stamps = _play(observer, good_frame, MIN_HITS + 3)
    offline = offline_estimator()(*good_frame, None, "bgr8")
    first = _tracked(observer, stamps[MIN_HITS - 1])  # confirmed at the min_hits-th frame
    assert len(first) == len(offline)
    for stamp in stamps[MIN_HITS:]:
        tracked = _tracked(observer, stamp)
        assert set(tracked) == set(first)  # the same ids, frame after frame
        if TFMessage is not None:
            names = set(tracked)
            assert wait_for(lambda s=stamp, n=names: set(observer.tf_at(s)) == n, 3.0), observer.tf_at(stamp)
    assert all(name.startswith(TF_PREFIX) for name in first)
    # the same measurements every frame: the filtered poses are the detections' own
    by_pose = {(d.class_name, round(float(d.t[2]), 9)): d for d in offline}
    for item in tracked.values():
        hyp = item.results[0]
        z = round(hyp.pose.pose.position.z, 9)
        det = by_pose[(hyp.hypothesis.class_id, z)]
        assert_pose_equal(hyp.pose.pose, det.R, det.t, atol=1e-6)


def test_poses_topic_carries_the_best_track_of_each_class(node, observer, good_frame):
    stamp = _play(observer, good_frame, 1)[0]
    tracked = _tracked(observer, stamp)
    for cls in ("ape", "cat"):
        mine = [d for d in tracked.values() if d.results[0].hypothesis.class_id == cls]
        if not mine:
            continue
        best = max(mine, key=lambda d: d.results[0].hypothesis.score)
        assert wait_for(lambda c=cls: stamp in observer.poses[c], 3.0)
        got, want = observer.poses[cls][stamp].pose, best.results[0].pose.pose
        np.testing.assert_allclose(
            [got.position.x, got.position.y, got.position.z],
            [want.position.x, want.position.y, want.position.z],
        )


def test_the_off_switch_gives_per_frame_output_and_back_on_starts_afresh(node, observer, good_frame):
    assert all(r.successful for r in observer.set_parameters(tracking=False))
    try:
        stamp = _play(observer, good_frame, 1)[0]
        time.sleep(1.0)
        assert stamp not in observer.tracked  # ~/tracked is silent
        per_frame = {d.id for d in observer.detections[stamp].detections}
        if TFMessage is not None:  # TF falls back to the per-frame names <class>_<instance>
            assert wait_for(lambda: set(observer.tf_at(stamp)) == per_frame, 3.0), observer.tf_at(stamp)
    finally:
        assert all(r.successful for r in observer.set_parameters(tracking=True))
    stamps = _play(observer, good_frame, MIN_HITS)
    time.sleep(1.0)
    assert all(
        s not in observer.tracked or not observer.tracked[s].detections for s in stamps[: MIN_HITS - 1]
    )
    ids = {d.id.rsplit("_", 1)[1] for d in _tracked(observer, stamps[-1]).values()}
    assert "0" in ids  # a fresh tracker: ids start again from 0


def test_tracking_parameters_are_live_and_checked(node, observer):
    assert all(r.successful for r in observer.set_parameters(tracking_pose_gain=0.5, tracking_min_hits=2))
    bad = observer.set_parameters(tracking_pose_gain=0.0)  # outside its declared range (0.01, 1.0)
    assert not bad[0].successful
    assert all(
        r.successful for r in observer.set_parameters(tracking_pose_gain=0.3, tracking_min_hits=MIN_HITS)
    )
    assert "parameters updated: tracking_pose_gain=0.5" in node.text()
    assert node.proc.poll() is None


def test_markers_sit_where_the_tf_frames_are(node, observer, good_frame):
    """rviz cuboids follow the tracks: none for a new object until its track is confirmed."""
    from visualization_msgs.msg import Marker, MarkerArray  # noqa: PLC0415

    kept: dict[int, list] = {}

    def keep(msg: MarkerArray) -> None:
        stamp = msg.markers[0].header.stamp
        kept[stamp_to_ns(stamp.sec, stamp.nanosec)] = list(msg.markers)

    sub = observer.node.create_subscription(MarkerArray, f"{observer.node_ns}/markers", keep, 100)
    try:
        assert wait_for(lambda: sub.get_publisher_count() >= 1, 10.0)
        time.sleep(0.5)  # the node publishes markers only once it sees a subscriber
        assert all(r.successful for r in observer.set_parameters(tracking=False))
        assert all(r.successful for r in observer.set_parameters(tracking=True))  # a fresh tracker
        stamps = _play(observer, good_frame, MIN_HITS)
        assert wait_for(lambda: all(s in kept for s in stamps), 5.0), "no ~/markers for the frames"

        def cuboids(stamp: int) -> list:
            return [m for m in kept[stamp] if m.type == Marker.LINE_LIST]

        for stamp in stamps[: MIN_HITS - 1]:
            assert observer.detections[stamp].detections  # the network found objects ...
            assert kept[stamp][0].action == Marker.DELETEALL
            assert cuboids(stamp) == []  # ... but no track is confirmed yet, so TF shows none
        tracked = _tracked(observer, stamps[-1])
        drawn = sorted(round(m.pose.position.z, 6) for m in cuboids(stamps[-1]))
        assert drawn == sorted(round(d.results[0].pose.pose.position.z, 6) for d in tracked.values())
        assert drawn  # the confirmed tracks are drawn
    finally:
        observer.node.destroy_subscription(sub)

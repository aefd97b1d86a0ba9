"""Per-cause log throttling and the pipeline statistics window (pure Python)."""

from __future__ import annotations

import pytest

from hrpose_ros.ros.node_stats import KeyedThrottle, PipelineStats


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttle_allows_first_line_then_suppresses_within_period():
    clock = _Clock()
    throttle = KeyedThrottle(5.0, clock)
    assert throttle.allow("encoding") == (True, 0)
    clock.now += 1.0
    assert throttle.allow("encoding") == (False, 0)
    assert throttle.allow("encoding") == (False, 0)
    clock.now += 5.0
    assert throttle.allow("encoding") == (True, 2)


def test_throttle_keys_are_independent():
    clock = _Clock()
    throttle = KeyedThrottle(5.0, clock)
    assert throttle.allow("encoding")[0]
    assert throttle.allow("camera_info")[0]
    assert not throttle.allow("encoding")[0]


def test_negative_period_is_refused():
    with pytest.raises(ValueError, match="period_s"):
        KeyedThrottle(-1.0)


def test_snapshot_gives_fps_means_maxima_and_totals_then_resets():
    clock = _Clock()
    stats = PipelineStats(clock)
    stats.count("received", 5)
    stats.count("dropped", 2)
    stats.record_frame({"inference": 0.010, "total": 0.020})
    stats.record_frame({"inference": 0.030, "total": 0.040})
    clock.now += 2.0
    snap = stats.snapshot()
    assert snap["fps"] == pytest.approx(1.0)
    assert snap["inference_mean_ms"] == pytest.approx(20.0)
    assert snap["inference_max_ms"] == pytest.approx(30.0)
    assert (snap["received"], snap["processed"], snap["dropped"]) == (5, 2, 2)
    clock.now += 1.0
    again = stats.snapshot()
    assert again["fps"] == 0.0
    assert "inference_mean_ms" not in again
    assert again["processed"] == 2

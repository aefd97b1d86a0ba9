"""CameraInfo-to-image stamp matching and image stamp ordering (pure Python, no ROS)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrpose_ros.ros.stamp_matcher import (
    MatchMode,
    StampMatcher,
    StampOrder,
    StampVerdict,
    stamp_to_ns,
)

MS = 1_000_000


def test_stamp_to_ns_combines_seconds_and_nanoseconds():
    assert stamp_to_ns(3, 250_000_000) == 3_250_000_000


def test_exact_stamp_matches_its_item():
    m = StampMatcher(slop_ns=0)
    m.add(100 * MS, "a")
    m.add(200 * MS, "b")
    assert m.match(200 * MS) == "b"
    assert m.match(100 * MS) == "a"


def test_nearest_item_within_slop_is_returned():
    m = StampMatcher(slop_ns=20 * MS)
    for t in (0, 33, 66, 100):
        m.add(t * MS, t)
    assert m.match(70 * MS) == 66
    assert m.match(95 * MS) == 100


def test_no_item_within_slop_gives_none():
    m = StampMatcher(slop_ns=5 * MS)
    m.add(0, "a")
    m.add(100 * MS, "b")
    assert m.match(50 * MS) is None
    assert m.nearest_gap_ns(50 * MS) == 50 * MS


def test_empty_matcher_gives_none():
    m = StampMatcher(slop_ns=10 * MS)
    assert m.match(0) is None
    assert m.nearest_gap_ns(0) is None


def test_latest_mode_ignores_stamps():
    m = StampMatcher(slop_ns=0, mode="latest")
    m.add(500 * MS, "old-stamp-added-last")
    m.add(100 * MS, "x")
    assert m.mode is MatchMode.LATEST
    assert m.match(10_000 * MS) == "x"


def test_capacity_evicts_oldest_stamps():
    m = StampMatcher(slop_ns=0, capacity=3)
    for t in range(5):
        m.add(t, t)
    assert len(m) == 3
    assert m.match(0) is None
    assert m.match(1) is None
    assert m.match(4) == 4


def test_equal_stamp_replaces_item():
    m = StampMatcher(slop_ns=0)
    m.add(7, "first")
    m.add(7, "second")
    assert len(m) == 1
    assert m.match(7) == "second"


def test_clear_forgets_everything():
    m = StampMatcher(slop_ns=10, mode="latest")
    m.add(1, "a")
    m.clear()
    assert len(m) == 0
    assert m.match(1) is None


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"slop_ns": -1}, "slop_ns"),
        ({"slop_ns": 0, "capacity": 0}, "capacity"),
        ({"slop_ns": 0, "mode": "x"}, "mode"),
    ],
)
def test_bad_arguments_are_named(kwargs, word):
    with pytest.raises(ValueError, match=word):
        StampMatcher(**kwargs)


@settings(max_examples=200, deadline=None)
@given(
    stamps=st.lists(st.integers(0, 10**6), min_size=1, max_size=20),
    query=st.integers(0, 10**6),
    slop=st.integers(0, 10**5),
)
def test_match_equals_brute_force_nearest(stamps, query, slop):
    m = StampMatcher(slop_ns=slop, capacity=100)
    for s in stamps:
        m.add(s, s)
    got = m.match(query)
    best_gap = min(abs(s - query) for s in stamps)
    if best_gap > slop:
        assert got is None
    else:
        assert got is not None
        assert abs(got - query) == best_gap


def test_stamp_order_accepts_increasing_stamps():
    order = StampOrder(reset_jump_ns=1000)
    assert order.check(1) is StampVerdict.OK
    assert order.check(2) is StampVerdict.OK
    assert order.newest_ns == 2


def test_stamp_order_flags_small_backward_step_and_keeps_newest():
    order = StampOrder(reset_jump_ns=1000)
    order.check(5000)
    assert order.check(4500) is StampVerdict.BACKWARDS
    assert order.check(5000) is StampVerdict.BACKWARDS
    assert order.newest_ns == 5000
    assert order.check(5001) is StampVerdict.OK


def test_stamp_order_treats_large_backward_jump_as_reset():
    order = StampOrder(reset_jump_ns=1000)
    order.check(10_000)
    assert order.check(10) is StampVerdict.RESET
    assert order.newest_ns == 10
    assert order.check(11) is StampVerdict.OK


def test_discard_newer_than_drops_future_stamps_only():
    m = StampMatcher(slop_ns=0)
    for t in (1, 5, 9):
        m.add(t, t)
    m.discard_newer_than(5)
    assert len(m) == 2
    assert m.match(5) == 5
    assert m.match(9) is None


def test_has_newer_than_says_whether_the_camera_moved_past_a_stamp():
    m = StampMatcher(slop_ns=0)
    assert not m.has_newer_than(0)  # empty: the item may still come
    m.add(3, "a")
    m.add(7, "b")
    assert m.has_newer_than(6)
    assert not m.has_newer_than(7)
    assert not m.has_newer_than(10)

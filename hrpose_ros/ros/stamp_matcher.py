"""Match CameraInfo messages to images by timestamp, without message_filters.

``message_filters`` is not on PyPI, and the node only needs one thing from it: the
CameraInfo whose stamp is closest to an image's stamp (approximate time within a
slop), or simply the latest one when the user says the camera model never changes.
Stamps are integer nanoseconds (``sec * 10**9 + nanosec``) so that matching is exact
arithmetic. Pure Python: tested without ROS.
"""

from __future__ import annotations

import bisect
from enum import Enum
from typing import Generic, TypeVar

__all__ = [
    "MatchMode",
    "StampMatcher",
    "StampOrder",
    "StampVerdict",
    "stamp_to_ns",
]

T = TypeVar("T")

NS_PER_S = 1_000_000_000


def stamp_to_ns(sec: int, nanosec: int) -> int:
    """Convert a ROS ``builtin_interfaces/Time`` (sec, nanosec) to integer nanoseconds."""
    return int(sec) * NS_PER_S + int(nanosec)


class MatchMode(str, Enum):
    """How an image finds its CameraInfo."""

    APPROXIMATE = "approximate"
    """The buffered CameraInfo nearest in time, if within the slop."""
    LATEST = "latest"
    """The most recently received CameraInfo, whatever its stamp."""


class StampMatcher(Generic[T]):
    """A bounded buffer of items keyed by stamp, queried by nearest stamp.

    Args:
        slop_ns: largest accepted ``|stamp_item - stamp_query|`` in nanoseconds (approximate mode).
        capacity: items kept; the oldest stamps are evicted first (bounds memory at high rates).
        mode: ``MatchMode.APPROXIMATE`` or ``MatchMode.LATEST`` (or their string values).
    """

    def __init__(self, slop_ns: int, capacity: int = 32, mode: MatchMode | str = MatchMode.APPROXIMATE):
        if slop_ns < 0:
            raise ValueError(f"slop_ns must be >= 0, got {slop_ns}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        try:
            self.mode = MatchMode(mode)
        except ValueError:
            choices = ", ".join(m.value for m in MatchMode)
            raise ValueError(f"mode must be one of {choices}, got {mode!r}") from None
        self.slop_ns = int(slop_ns)
        self.capacity = int(capacity)
        self._stamps: list[int] = []
        self._items: list[T] = []
        self._latest: T | None = None

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp_ns: int, item: T) -> None:
        """Store ``item`` under ``stamp_ns``; an item with an equal stamp is replaced."""
        stamp_ns = int(stamp_ns)
        i = bisect.bisect_left(self._stamps, stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == stamp_ns:
            self._items[i] = item
        else:
            self._stamps.insert(i, stamp_ns)
            self._items.insert(i, item)
        if len(self._stamps) > self.capacity:
            del self._stamps[0]
            del self._items[0]
        self._latest = item

    def match(self, stamp_ns: int) -> T | None:
        """Return the item for an image stamped ``stamp_ns``, or None when none qualifies."""
        if self.mode is MatchMode.LATEST:
            return self._latest
        if not self._stamps:
            return None
        stamp_ns = int(stamp_ns)
        i = bisect.bisect_left(self._stamps, stamp_ns)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)]
        best = min(candidates, key=lambda j: abs(self._stamps[j] - stamp_ns))
        if abs(self._stamps[best] - stamp_ns) > self.slop_ns:
            return None
        return self._items[best]

    def has_newer_than(self, stamp_ns: int) -> bool:
        """True when an item stamped after ``stamp_ns`` is buffered: a camera publishes in
        stamp order, so no item nearer to an older stamp is still to come."""
        return bool(self._stamps) and self._stamps[-1] > int(stamp_ns)

    def nearest_gap_ns(self, stamp_ns: int) -> int | None:
        """Distance in ns to the nearest buffered stamp (for error messages); None when empty."""
        if not self._stamps:
            return None
        return min(abs(s - int(stamp_ns)) for s in self._stamps)

    def discard_newer_than(self, stamp_ns: int) -> None:
        """Drop items stamped after ``stamp_ns`` (stale future stamps after a clock reset)."""
        i = bisect.bisect_right(self._stamps, int(stamp_ns))
        del self._stamps[i:]
        del self._items[i:]

    def clear(self) -> None:
        """Forget every item (after a clock reset, e.g. a looping bag)."""
        self._stamps.clear()
        self._items.clear()
        self._latest = None


class StampVerdict(str, Enum):
    """What ``StampOrder.check`` says about a new image stamp."""

    OK = "ok"
    """Newer than the previous image: process it."""
    BACKWARDS = "backwards"
    """Older than (or equal to) the previous image by less than the reset jump: drop it."""
    RESET = "reset"
    """Older by more than the reset jump: a clock reset (bag loop, simulator restart)."""


class StampOrder:
    """Track image stamps so that out-of-order frames are dropped and clock resets recovered.

    Args:
        reset_jump_ns: a stamp this much older than the newest one seen is taken as a
            clock reset (history forgotten, frame processed) rather than an out-of-order frame.
    """

    def __init__(self, reset_jump_ns: int = 2 * NS_PER_S):
        if reset_jump_ns <= 0:
            raise ValueError(f"reset_jump_ns must be > 0, got {reset_jump_ns}")
        self.reset_jump_ns = int(reset_jump_ns)
        self._newest: int | None = None

    @property
    def newest_ns(self) -> int | None:
        """The newest accepted stamp, or None before the first one."""
        return self._newest

    def check(self, stamp_ns: int) -> StampVerdict:
        """Classify ``stamp_ns`` against the newest accepted stamp and update the state."""
        stamp_ns = int(stamp_ns)
        if self._newest is None or stamp_ns > self._newest:
            self._newest = stamp_ns
            return StampVerdict.OK
        if self._newest - stamp_ns > self.reset_jump_ns:
            self._newest = stamp_ns
            return StampVerdict.RESET
        return StampVerdict.BACKWARDS

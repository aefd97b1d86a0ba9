"""Bookkeeping for the node: per-stage latency and fps windows, and per-cause log throttling.

Pure Python (no rclpy) so it is unit-tested without spinning; the node owns one
``PipelineStats`` and one ``KeyedThrottle`` and reads them from its diagnostics timer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["KeyedThrottle", "PipelineStats"]


class KeyedThrottle:
    """Allow one log line per key per ``period_s`` (a flood of one bad input must not hide another).

    ``rclpy``'s ``throttle_duration_sec`` throttles per call site, so two different bad
    inputs reported from the same line would silence each other; this throttles per cause.
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic):
        if period_s < 0:
            raise ValueError(f"period_s must be >= 0, got {period_s}")
        self.period_s = float(period_s)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """Return (may log now, lines suppressed for this key since the last allowed one)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)


class PipelineStats:
    """Counters and per-stage latency sums over a reporting window (thread-safe).

    The worker thread calls ``record_frame`` / ``count``; the diagnostics timer calls
    ``snapshot`` which returns the window's numbers and starts a new window.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._totals: dict[str, int] = {
            "received": 0,
            "processed": 0,
            "dropped": 0,
            "bad_input": 0,
            "errors": 0,
        }
        self._reset_window(clock())

    def _reset_window(self, now: float) -> None:
        self._window_start = now
        self._window_frames = 0
        self._stage_sum: dict[str, float] = {}
        self._stage_max: dict[str, float] = {}

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the total counter ``name`` (received, dropped, bad_input, errors...)."""
        with self._lock:
            self._totals[name] = self._totals.get(name, 0) + n

    def record_frame(self, stage_seconds: Mapping[str, float]) -> None:
        """Record one processed frame's stage durations (seconds)."""
        with self._lock:
            self._totals["processed"] += 1
            self._window_frames += 1
            for stage, seconds in stage_seconds.items():
                self._stage_sum[stage] = self._stage_sum.get(stage, 0.0) + float(seconds)
                self._stage_max[stage] = max(self._stage_max.get(stage, 0.0), float(seconds))

    def totals(self) -> dict[str, int]:
        """Counters since start."""
        with self._lock:
            return dict(self._totals)

    def snapshot(self) -> dict[str, float | int]:
        """Window numbers and totals, then start a new window.

        Keys: ``fps``, ``window_s``, ``<stage>_mean_ms``, ``<stage>_max_ms`` and the totals.
        """
        now = self._clock()
        with self._lock:
            window = max(now - self._window_start, 1e-9)
            out: dict[str, float | int] = {"fps": self._window_frames / window, "window_s": window}
            n = max(self._window_frames, 1)
            for stage, total in self._stage_sum.items():
                out[f"{stage}_mean_ms"] = 1000.0 * total / n
                out[f"{stage}_max_ms"] = 1000.0 * self._stage_max[stage]
            out.update(self._totals)
            self._reset_window(now)
            return out

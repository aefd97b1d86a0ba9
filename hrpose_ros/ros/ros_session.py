"""Helpers for programs that drive hrpose_node from outside: an observer node, child processes.

The demo, the node benchmark and the integration tests all start ``hrpose_node`` and
``hrpose-play`` as separate processes and listen from their own process; this module is
the one implementation of that plumbing.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading

__all__ = ["BackgroundNode", "stop_process"]

_log = logging.getLogger(__name__)


class BackgroundNode:
    """An rclpy node in a context of its own, spun by a daemon thread.

    Its callbacks run on that thread while the caller waits for results; a callback
    that raises is logged and spinning goes on (a silent dead thread would look like
    a node that stopped publishing).

    Args:
        name: node name.
        domain_id: ROS domain of the context (None = ``ROS_DOMAIN_ID`` or 0).
    """

    def __init__(self, name: str, domain_id: int | None = None):
        import rclpy  # noqa: PLC0415
        from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415

        self._rclpy = rclpy
        self._closing = False
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok() and not self._closing:
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self._closing or not self.context.ok():
                    return
                _log.exception("callback of %s failed", self.node.get_name())

    def close(self) -> None:
        """Stop spinning, destroy the node and shut its context down."""
        self._closing = True
        self._thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGINT (a ROS node's clean shutdown), then SIGKILL after ``timeout_s``; the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode

"""Which Fast DDS transports hrpose_node uses, when the user has not said.

Why: with Fast DDS (the ROS 2 default middleware) two processes on one host talk over
shared memory *and* UDP. Measured here (2 cores, a 2 Hz 640x480 player and a plain
subscriber, ``FASTDDS_BUILTIN_TRANSPORTS`` unset): under CPU load 16 to 28 of 40
CameraInfo messages came 0.5 to 2.5 s late, in bursts at Fast DDS's 3 s heartbeat, and
some never came, while every Image was on time (4 of 40 late without the load). Each
such image has no CameraInfo to match and is dropped (the node's ``no_camera_info``
warning). With UDP only on *either* side, 0 of 40 came late under the same load, at some
26 ms more per 640x480 image (``scripts/camera_info_latency.py``). So the node asks Fast
DDS for UDPv4 unless the variable is already set; ``FASTDDS_BUILTIN_TRANSPORTS=DEFAULT``
restores shared memory. Other middlewares ignore the variable.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["NODE_TRANSPORTS", "TRANSPORTS_VARIABLE", "prefer_node_transports"]

TRANSPORTS_VARIABLE = "FASTDDS_BUILTIN_TRANSPORTS"
NODE_TRANSPORTS = "UDPv4"


def prefer_node_transports(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Set ``FASTDDS_BUILTIN_TRANSPORTS=UDPv4`` in ``environ`` (default: this process's)
    unless it is set already; call before ``rclpy.init``.

    Returns:
        The value now in effect when this call set it, None when the user's value stands.
    """
    env = os.environ if environ is None else environ
    if env.get(TRANSPORTS_VARIABLE):
        return None
    env[TRANSPORTS_VARIABLE] = NODE_TRANSPORTS
    return NODE_TRANSPORTS

"""ROS 2 side: the node and the programs around it; the only importers of rclpy.

``node`` (with its parameter table ``node_params`` and bookkeeping ``node_stats``)
converts messages (``ros_messages``), matches CameraInfo to images (``stamp_matcher``)
and calls the runtime's ``Estimator`` for everything numeric. ``player``
(``hrpose-play``) publishes a BOP folder, ``demo`` (``hrpose-demo``) runs node and player
end to end and scores the poses with ``evaluation``, and ``ros_session`` is their shared
process and observer plumbing. Imports the geometry core, the runtime, ``data`` and
``evaluation``; never torch, timm, training or network, so the node runs on a
deployment machine without a training stack.
"""

"""Geometry core: numpy + OpenCV only (no rclpy, no torch).

Shared by the ROS node, the runtime, evaluation and training: one implementation of
keypoints, targets, decoding, PnP and metrics.
"""

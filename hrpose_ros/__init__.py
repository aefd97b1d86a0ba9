"""hrpose_ros: real-time 6D object pose estimation (HRPose) as a ROS 2 package."""

__version__ = "0.1.0"

"""Launch hrpose_node (6D object poses from an RGB camera), optionally with rviz2.

Usage::

    ros2 launch hrpose_ros pose.launch.py \
        image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info

Parameters come from ``params_file`` (default: the package's ``config/hrpose.yaml``),
then the ``model`` and ``backend`` arguments override it (last wins). The camera
topics are connected by remapping the node's ``image`` and ``camera_info``.
Outputs: ``~/poses/<class>``, ``~/detections``, ``~/tracked``, ``~/markers``, ``~/overlay``,
TF and ``/diagnostics``; ``use_rviz:=true`` opens ``config/hrpose.rviz`` showing them.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "hrpose_ros"


def generate_launch_description() -> LaunchDescription:
    """The node with its parameters and remappings, and rviz2 when ``use_rviz`` is true."""
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(
            "image_topic", default_value="image_raw", description="sensor_msgs/Image input topic"
        ),
        DeclareLaunchArgument(
            "camera_info_topic", default_value="camera_info", description="sensor_msgs/CameraInfo input topic"
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "hrpose.yaml"]),
            description="YAML file of node parameters (hrpose_node: ros__parameters: ...)",
        ),
        DeclareLaunchArgument(
            "model",
            default_value=PathJoinSubstitution([share, "models", "hrpose_student.json"]),
            description="model bundle: NAME.json or NAME.onnx (metadata JSON beside the ONNX file)",
        ),
        DeclareLaunchArgument(
            "backend",
            default_value="auto",
            description="inference backend: tensorrt | onnxruntime | torch | auto",
        ),
        DeclareLaunchArgument(
            "use_rviz", default_value="false", description="start rviz2 with config/hrpose.rviz"
        ),
    ]
    node = Node(
        package=PACKAGE,
        executable="hrpose_node",
        name="hrpose_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {"model": LaunchConfiguration("model"), "backend": LaunchConfiguration("backend")},
        ],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        output="screen",
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "config", "hrpose.rviz"])],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
        output="screen",
    )
    return LaunchDescription([*arguments, node, rviz])

"""Robot bringup: memorizer + task server as managed lifecycle nodes.

    ros2 launch taskmem_ros robot.launch.py params_file:=/path/robot.yaml image_topic:=/camera/image_raw
    ros2 launch taskmem_ros robot.launch.py one_process:=true \
        params_file:=$(ros2 pkg prefix taskmem_ros)/share/taskmem_ros/config/qwen3vl_onboard.yaml

Both nodes are brought to active by ``taskmem_ros.launch_support.lifecycle_node``: launch_ros's
``LifecycleNode(autostart=True)`` where it has it (Jazzy, Kilted), launch events otherwise.
Camera input follows image_transport naming: ``image_topic`` is the base (``image_transport:=raw``
subscribes to it, ``compressed`` to ``<base>/compressed``); ``audio_format:=audio_common`` reads
audio_common_msgs/AudioStamped instead of our AudioChunk.
``one_process:=true`` runs both in one process (``taskmem-bringup``, self-activating), so a
Qwen3-VL policy and answerer share one copy of the weights on the GPU.
"""

import os

import launch
import launch.actions
from ament_index_python.packages import get_package_share_directory
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from taskmem_ros.launch_support import lifecycle_node


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("taskmem_ros"), "config", "robot.yaml")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    params_file = LaunchConfiguration("params_file")
    one_process = LaunchConfiguration("one_process")
    topics = {
        "image_topic": LaunchConfiguration("image_topic"),
        "image_transport": LaunchConfiguration("image_transport"),
        "compressed_image_topic": LaunchConfiguration("compressed_image_topic"),
        "audio_topic": LaunchConfiguration("audio_topic"),
        "audio_format": LaunchConfiguration("audio_format"),
    }
    overrides = {
        "use_sim_time": use_sim_time,
    }

    memorizer = lifecycle_node(
        package="taskmem_ros",
        executable="memorizer_node",
        name="memorizer",
        namespace=namespace,
        output="screen",
        parameters=[params_file, overrides, topics],
        condition=UnlessCondition(one_process),
    )
    task_server = lifecycle_node(
        package="taskmem_ros",
        executable="task_node",
        name="task_server",
        namespace=namespace,
        output="screen",
        parameters=[params_file, overrides],
        condition=UnlessCondition(one_process),
    )
    # No name: a __node remap would rename both nodes of the process.
    shared = Node(
        package="taskmem_ros",
        executable="taskmem-bringup",
        namespace=namespace,
        output="screen",
        arguments=["--params", params_file],
        parameters=[overrides, topics],
        condition=IfCondition(one_process),
    )
    return launch.LaunchDescription(
        [
            launch.actions.DeclareLaunchArgument("namespace", default_value="", description="robot namespace"),
            launch.actions.DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="follow /clock (Gazebo, Isaac, bag replay)"
            ),
            launch.actions.DeclareLaunchArgument(
                "params_file", default_value=default_params, description="ROS 2 params file"
            ),
            launch.actions.DeclareLaunchArgument("image_topic", default_value="camera/image_raw"),
            launch.actions.DeclareLaunchArgument(
                "compressed_image_topic", default_value="", description="CompressedImage topic ('' = off)"
            ),
            launch.actions.DeclareLaunchArgument(
                "image_transport", default_value="raw", description="'raw' (<image_topic>) or 'compressed'"
            ),
            launch.actions.DeclareLaunchArgument("audio_topic", default_value="audio/audio"),
            launch.actions.DeclareLaunchArgument(
                "audio_format", default_value="taskmem", description="'taskmem' (AudioChunk) or 'audio_common'"
            ),
            launch.actions.DeclareLaunchArgument(
                "one_process",
                default_value="false",
                description="run both nodes in one process (one copy of a Qwen3-VL model for policy and answerer)",
            ),
            *memorizer,
            *task_server,
            shared,
        ]
    )

"""Robot bringup: memorizer + task server as managed lifecycle nodes.

    ros2 launch taskmem_ros robot.launch.py params_file:=/path/robot.yaml image_topic:=/camera/image_raw

Both nodes are configured and activated by launch events (no separate lifecycle manager).
"""

import os

import launch
import launch.actions
import launch.events
import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState


def _lifecycle_to_active(node):
    """Emit configure now, and activate once the node reports 'inactive'."""
    configure = launch.actions.EmitEvent(
        event=ChangeState(
            lifecycle_node_matcher=launch.events.matches_action(node),
            transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE,
        )
    )
    activate_when_inactive = launch.actions.RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            goal_state="inactive",
            entities=[
                launch.actions.EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=launch.events.matches_action(node),
                        transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE,
                    )
                )
            ],
        )
    )
    return [activate_when_inactive, configure]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("taskmem_ros"), "config", "robot.yaml")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    params_file = LaunchConfiguration("params_file")
    overrides = {
        "use_sim_time": use_sim_time,
    }

    memorizer = LifecycleNode(
        package="taskmem_ros",
        executable="memorizer_node",
        name="memorizer",
        namespace=namespace,
        output="screen",
        parameters=[
            params_file,
            overrides,
            {
                "image_topic": LaunchConfiguration("image_topic"),
                "compressed_image_topic": LaunchConfiguration("compressed_image_topic"),
                "audio_topic": LaunchConfiguration("audio_topic"),
            },
        ],
    )
    task_server = LifecycleNode(
        package="taskmem_ros",
        executable="task_node",
        name="task_server",
        namespace=namespace,
        output="screen",
        parameters=[params_file, overrides],
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
            launch.actions.DeclareLaunchArgument("audio_topic", default_value="audio/audio"),
            memorizer,
            task_server,
            *_lifecycle_to_active(memorizer),
            *_lifecycle_to_active(task_server),
        ]
    )

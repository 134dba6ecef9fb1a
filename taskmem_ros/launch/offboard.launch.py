"""Offboard tuner: Phase Two after deployment, delivered to one robot's memorizer.

    ros2 launch taskmem_ros offboard.launch.py robot_namespace:=robot1 \
        params_file:=$(ros2 pkg prefix taskmem_ros)/share/taskmem_ros/config/offboard.yaml

The tuner is a managed lifecycle node brought to active by ``launch_support.lifecycle_node``
(as in robot.launch.py). Its adapters go to ``/<robot_namespace>/memorizer/load_adapter``.
"""

import os

import launch
import launch.actions
from ament_index_python.packages import get_package_share_directory
from launch.substitutions import LaunchConfiguration, PythonExpression

from taskmem_ros.launch_support import lifecycle_node


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("taskmem_ros"), "config", "offboard.yaml")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    params_file = LaunchConfiguration("params_file")
    robot_namespace = LaunchConfiguration("robot_namespace")
    # "/<robot_namespace>/memorizer/load_adapter", or "/memorizer/load_adapter" without a namespace
    load_adapter = PythonExpression(
        ["'/' + '/'.join(p for p in ('", robot_namespace, "'.strip('/'), 'memorizer/load_adapter') if p)"]
    )
    overrides = {
        "use_sim_time": use_sim_time,
        "robot_load_adapter_service": load_adapter,
    }

    tuner = lifecycle_node(
        package="taskmem_ros",
        executable="tuner_node",
        name="tuner",
        namespace=namespace,
        output="screen",
        parameters=[params_file, overrides],
    )
    return launch.LaunchDescription(
        [
            launch.actions.DeclareLaunchArgument("namespace", default_value="", description="tuner namespace"),
            launch.actions.DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="follow /clock (simulation, bag replay)"
            ),
            launch.actions.DeclareLaunchArgument(
                "params_file", default_value=default_params, description="ROS 2 params file (node 'tuner')"
            ),
            launch.actions.DeclareLaunchArgument(
                "robot_namespace",
                default_value="",
                description="namespace of the robot whose memorizer gets the adapters ('' = none)",
            ),
            *tuner,
        ]
    )

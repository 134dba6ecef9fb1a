"""taskmem_ros: task-focused long-term episodic memory for ROS 2 robots (TaskMem).

The core subpackages (store, streams, policy, answer, training, evaluation) never import
rclpy; ROS lives only in :mod:`taskmem_ros.nodes`.
"""

__version__ = "0.1.0"

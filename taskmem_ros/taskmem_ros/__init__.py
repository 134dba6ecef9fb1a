"""taskmem_ros: task-focused long-term episodic memory for ROS 2 robots (TaskMem).

The core subpackages (store, streams, policy, answer, training, evaluation) never import
rclpy; ROS lives only in :mod:`taskmem_ros.nodes`.
"""

import logging as _logging

__version__ = "0.1.0"

# peft (and so trl and the LoRA adapters) imports bitsandbytes whenever it is installed, and
# bitsandbytes then warns that its optional CPU kernels are missing, on every start, whatever
# the policy. Its warnings only matter when a bnb quantization is configured: the engine turns
# them back on then (llm/transformers_engine.py: quantization_config).
_logging.getLogger("bitsandbytes").setLevel(_logging.ERROR)

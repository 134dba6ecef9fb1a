"""Node-level settings (topics, QoS, timeouts), typed like ``config.py`` and ROS-free.

Each node declares these beside the shared TaskMemConfig, so ``ros2 param describe`` gives the
same descriptions and ranges (see ``param_schema``) and a bad value fails configure with one line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from taskmem_ros.config import _check, _one_of

SENSOR_QOS_CHOICES = ("sensor_data", "reliable", "replay")
IMAGE_TRANSPORTS = ("raw", "compressed")
AUDIO_FORMATS = ("taskmem", "audio_common")
DEFAULT_TRAIN_COMMAND = [sys.executable, "-m", "taskmem_ros.training.cli", "phase2", "--json-progress"]


@dataclass
class MemorizerParams:
    """Memorizer node: which topics it listens and publishes on."""

    # image_transport base topic: "<base>" carries sensor_msgs/Image, "<base>/compressed" CompressedImage
    image_topic: str = "camera/image_raw"
    image_transport: str = "raw"  # "raw" subscribes to <base>, "compressed" to <base>/compressed
    compressed_image_topic: str = ""  # an extra CompressedImage topic outside that naming; "" = none
    audio_topic: str = "audio/audio"  # microphone topic; "" disables audio
    audio_format: str = "taskmem"  # "taskmem" (taskmem_interfaces/AudioChunk) or "audio_common" (AudioStamped)
    memory_topic: str = "memory/entries"  # MemoryEntry, one per committed memory
    adapter_topic: str = "memory/adapter"  # AdapterInfo, latched: the adapter shaping new memories
    # "sensor_data": best effort (live robots); "reliable": reliable, volatile (lossless live topics);
    # "replay": reliable + transient-local, matching taskmem-replay, so evaluation never loses the start
    sensor_qos: str = "sensor_data"
    flush_timeout_s: float = 120.0  # ~/flush and shutdown give up after this long without progress (not in total)
    flush_quiet_s: float = 0.5  # flush waits until sensor input has been quiet this long (in-flight data first)
    autostart: bool = False  # configure + activate on start (no lifecycle manager needed)

    def __post_init__(self) -> None:
        _one_of("image_transport", self.image_transport, IMAGE_TRANSPORTS)
        _one_of("audio_format", self.audio_format, AUDIO_FORMATS)
        _one_of("sensor_qos", self.sensor_qos, SENSOR_QOS_CHOICES)
        _check(bool(self.memory_topic.strip()), "memory_topic", self.memory_topic, "a topic name")
        _check(bool(self.adapter_topic.strip()), "adapter_topic", self.adapter_topic, "a topic name")
        _check(self.flush_timeout_s > 0, "flush_timeout_s", self.flush_timeout_s, "> 0")
        _check(self.flush_quiet_s >= 0, "flush_quiet_s", self.flush_quiet_s, ">= 0")

    @property
    def camera_topic(self) -> str:
        """The topic image_transport names for the chosen transport ("" = camera off)."""
        if not self.image_topic:
            return ""
        return self.image_topic if self.image_transport == "raw" else f"{self.image_topic}/compressed"


@dataclass
class TaskServerParams:
    """Task server node: query limits."""

    default_max_results: int = 10  # QueryMemory results when the request says 0
    max_question_chars: int = 4000  # longer questions are rejected, not truncated silently
    autostart: bool = False  # configure + activate on start (no lifecycle manager needed)

    def __post_init__(self) -> None:
        _check(self.default_max_results >= 1, "default_max_results", self.default_max_results, ">= 1")
        _check(self.max_question_chars >= 1, "max_question_chars", self.max_question_chars, ">= 1")


@dataclass
class TunerParams:
    """Tuner node: when Phase Two runs and where its adapter goes."""

    every_n_tasks: int = 50  # new non-eval tasks since the last adapter that trigger Phase Two; 0 = only on request
    poll_s: float = 30.0  # how often the task count is checked
    robot_load_adapter_service: str = "/memorizer/load_adapter"  # the robot memorizer's LoadAdapter
    deliver: bool = True  # call LoadAdapter on the robot after a successful run
    delivery_wait_s: float = 30.0  # wait this long for the robot's service to appear
    delivery_timeout_s: float = 300.0  # and this long for its reply (it swaps between policy batches)
    # argv of the training process; "--params <tmp params file>" is appended
    train_command: list[str] = field(default_factory=lambda: list(DEFAULT_TRAIN_COMMAND))
    adapter_topic: str = "~/adapter"  # AdapterInfo, latched: the latest trained adapter
    progress_topic: str = "~/progress"  # std_msgs/String, one JSON object per training event
    terminate_timeout_s: float = 10.0  # SIGTERM -> SIGKILL grace for a training process on cleanup
    autostart: bool = False  # configure + activate on start (no lifecycle manager needed)

    def __post_init__(self) -> None:
        _check(self.every_n_tasks >= 0, "every_n_tasks", self.every_n_tasks, ">= 0 (0 = only on request)")
        _check(self.poll_s > 0, "poll_s", self.poll_s, "> 0")
        _check(
            bool(self.train_command) and all(isinstance(c, str) and c for c in self.train_command),
            "train_command",
            self.train_command,
            "a non-empty list of arguments",
        )
        _check(
            bool(self.robot_load_adapter_service.strip()),
            "robot_load_adapter_service",
            self.robot_load_adapter_service,
            "a service name",
        )
        _check(self.delivery_wait_s >= 0, "delivery_wait_s", self.delivery_wait_s, ">= 0")
        _check(self.delivery_timeout_s > 0, "delivery_timeout_s", self.delivery_timeout_s, "> 0")
        _check(self.terminate_timeout_s > 0, "terminate_timeout_s", self.terminate_timeout_s, "> 0")

"""Sensor streams -> clips: image/audio payload decoding, segmentation, VAD and ASR (no rclpy)."""

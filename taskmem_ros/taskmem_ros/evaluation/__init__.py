"""The streaming benchmark harness: VideoMME, EgoLife and EgoTempo replayed as streams through
the robot's own memory loop, answered from memory only, scored as Accuracy = Coverage x Precision.

``datasets/`` loads the real formats, ``media`` decodes them, ``runner`` is the streaming protocol
(resumable, state in the store), ``metrics``/``judge``/``report`` score and present, ``synthetic``
builds a small benchmark from packaged footage for CI, ``cli`` is ``taskmem-eval``.
"""

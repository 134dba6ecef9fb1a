"""A bag straight into the core memory loop (no ROS graph): ``taskmem-replay --in-process``,
the evaluation runner's calibration and the benchmarks share it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from taskmem_ros.bags.reader import ReadStats, iter_bag

log = logging.getLogger(__name__)


def feed_bag(
    memorizer: Any,
    bag: Path,
    audio_rate: int,
    *,
    topics: list[str] | None = None,
    progress: bool = True,
    stats: ReadStats | None = None,
) -> dict[str, int]:
    """Push every camera/audio message of a bag through a Memorizer (same decoders as the node).
    Messages of other types are counted and warned about once per type."""
    from taskmem_ros.streams.audio import AudioDecodeError
    from taskmem_ros.streams.image_codec import ImageDecodeError
    from taskmem_ros.streams.messages import (
        AUDIO_TYPES,
        COMPRESSED_TYPES,
        IMAGE_TYPES,
        audio_to_block,
        compressed_source,
        count_rejection,
        image_source,
    )

    counts = {"frames_rejected": 0, "audio_rejected": 0, "messages_ignored": 0}
    ignored: set[str] = set()
    for m in tqdm(iter_bag(bag, topics=topics, stats=stats), desc="replay", unit="msg", disable=not progress):
        try:
            if m.msgtype in IMAGE_TYPES:
                memorizer.push_frame_lazy(*image_source(m.msg))
            elif m.msgtype in COMPRESSED_TYPES:
                memorizer.push_frame_lazy(*compressed_source(m.msg))
            elif m.msgtype in AUDIO_TYPES:
                memorizer.push_audio(audio_to_block(m.msg, audio_rate))
            else:
                counts["messages_ignored"] += 1
                if m.msgtype not in ignored:
                    ignored.add(m.msgtype)
                    log.warning("ignoring %s on %s: not a camera or audio type", m.msgtype, m.topic)
        except ImageDecodeError as exc:
            count_rejection(counts, exc)
            log.warning("dropped image at %d (%s): %s", m.log_time_ns, exc.kind, exc)
        except AudioDecodeError as exc:
            count_rejection(counts, exc)
            log.warning("dropped audio at %d: %s", m.log_time_ns, exc)
        memorizer.process_pending()
    return counts

"""`taskmem-replay BAG`: replay a rosbag2 (sqlite3 or mcap) into memory.

Two modes:
* graph (default): publish every message on the ROS graph with /clock at a rate factor,
  like `ros2 bag play`, so the running memorizer sees exactly what a robot would;
* ``--in-process``: feed the core memory loop directly as fast as possible (offline
  evaluation, no ROS needed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from taskmem_ros.bags.reader import BagError, bag_info, iter_bag

log = logging.getLogger("taskmem-replay")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="taskmem-replay", description=__doc__.splitlines()[0])
    p.add_argument("bag", type=Path)
    p.add_argument("--rate", type=float, default=1.0, help="playback rate factor (graph mode)")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--topics", nargs="*", help="only these topics")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="rename a topic")
    p.add_argument("--wait-subscribers", type=float, default=10.0, help="seconds to wait for subscribers")
    p.add_argument("--flush-service", default="/memorizer/flush", help="Trigger called at the end ('' = none)")
    p.add_argument("--history", type=int, default=200, help="messages kept per topic for late subscribers")
    p.add_argument("--ack-timeout", type=float, default=10.0, help="seconds to wait for delivery before flushing")
    p.add_argument("--in-process", action="store_true", help="feed the core directly, no ROS graph")
    p.add_argument("--params", help="params file for --in-process (config/robot.yaml)")
    p.add_argument("--db", help="store for --in-process: sqlite:///PATH or PATH")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.rate <= 0:
        p.error(f"--rate={args.rate} must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parse(argv)
    try:
        info = bag_info(args.bag)
    except BagError as exc:
        print(f"taskmem-replay: {exc}", file=sys.stderr)
        return 2
    try:
        stats = replay_in_process(args, info) if args.in_process else replay_on_graph(args, info)
    except BagError as exc:
        print(f"taskmem-replay: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stats, indent=2, sort_keys=True))
    return 0


def replay_in_process(args: argparse.Namespace, info: Any) -> dict[str, Any]:
    from taskmem_ros.config import TaskMemConfig, load_config
    from taskmem_ros.memorizer import Memorizer
    from taskmem_ros.policy.base import make_policy
    from taskmem_ros.store import EpisodicStore

    cfg = load_config(args.params) if args.params else TaskMemConfig()
    if args.db:
        cfg.store.url = args.db if "://" in args.db else f"sqlite:///{args.db}"
    with EpisodicStore(cfg.store) as store:
        policy = make_policy(cfg)
        memorizer = Memorizer(cfg, store, policy)
        counts = feed_bag(
            memorizer, args.bag, cfg.segmenter.audio_rate, topics=args.topics, progress=not args.no_progress
        )
        memorizer.flush()
        policy.close()
        return {**counts, **memorizer.all_stats()}


def feed_bag(
    memorizer: Any, bag: Path, audio_rate: int, *, topics: list[str] | None = None, progress: bool = True
) -> dict[str, int]:
    """Push every camera/audio message of a bag through a Memorizer (same decoders as the node)."""
    from taskmem_ros.streams.audio import AudioDecodeError
    from taskmem_ros.streams.image_codec import ImageDecodeError
    from taskmem_ros.streams.messages import (
        AUDIO_TYPES,
        COMPRESSED_TYPES,
        IMAGE_TYPES,
        audio_to_block,
        compressed_source,
        image_source,
    )

    counts = {"frames_rejected": 0, "audio_rejected": 0, "messages_ignored": 0}
    for m in tqdm(iter_bag(bag, topics=topics), desc="replay", unit="msg", disable=not progress):
        try:
            if m.msgtype in IMAGE_TYPES:
                memorizer.push_frame_lazy(*image_source(m.msg))
            elif m.msgtype in COMPRESSED_TYPES:
                memorizer.push_frame_lazy(*compressed_source(m.msg))
            elif m.msgtype in AUDIO_TYPES:
                memorizer.push_audio(audio_to_block(m.msg, audio_rate))
            else:
                counts["messages_ignored"] += 1
        except ImageDecodeError as exc:
            counts["frames_rejected"] += 1
            log.warning("dropped image at %d: %s", m.log_time_ns, exc)
        except AudioDecodeError as exc:
            counts["audio_rejected"] += 1
            log.warning("dropped audio at %d: %s", m.log_time_ns, exc)
        memorizer.process_pending()
    return counts


def _msg_class(msgtype: str) -> Any:
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def replay_on_graph(args: argparse.Namespace, info: Any) -> dict[str, Any]:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from std_srvs.srv import Trigger

    remap = dict(r.split(":=", 1) for r in args.remap)
    rclpy.init(args=["taskmem-replay", "--ros-args", "-r", "__node:=taskmem_replay"])
    node = rclpy.create_node("taskmem_replay")
    stats: dict[str, Any] = {"published": 0, "skipped_unknown_type": 0}
    try:
        # Transient-local: a subscriber matched a moment late (slow discovery, a stale
        # participant of a crashed node counted as "the" subscriber) still receives the start.
        qos = QoSProfile(
            depth=args.history, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        pubs: dict[str, Any] = {}
        for topic, msgtype in info.topics.items():
            if args.topics and topic not in args.topics:
                continue
            try:
                pubs[topic] = node.create_publisher(_msg_class(msgtype), remap.get(topic, topic), qos)
            except (ImportError, AttributeError, ValueError):
                log.warning("no Python type for %s (%s); topic skipped", msgtype, topic)
        clock_pub = None if args.no_clock else node.create_publisher(Clock, "/clock", 10)
        _wait_for_subscribers(node, list(pubs.values()), args.wait_subscribers)
        wall0: float | None = None
        bag0 = 0
        for m in tqdm(
            iter_bag(args.bag, topics=args.topics, deserialize=False),
            desc="replay",
            unit="msg",
            total=info.message_count,
            disable=args.no_progress,
        ):
            pub = pubs.get(m.topic)
            if pub is None:
                stats["skipped_unknown_type"] += 1
                continue
            if wall0 is None:
                wall0, bag0 = time.monotonic(), m.log_time_ns
            delay = wall0 + (m.log_time_ns - bag0) / 1e9 / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if clock_pub is not None:
                clock = Clock()
                clock.clock.sec, clock.clock.nanosec = divmod(m.log_time_ns, 1_000_000_000)
                clock_pub.publish(clock)
            pub.publish(bytes(m.rawdata))
            stats["published"] += 1
        # Published is not delivered: wait until subscribers have every message before the
        # flush closes the last clip (a reader left by a crashed node never acks: bounded).
        from rclpy.duration import Duration

        stats["all_acked"] = all(p.wait_for_all_acked(Duration(seconds=args.ack_timeout)) for p in pubs.values())
        if args.flush_service:
            stats["flush"] = _call_trigger(node, Trigger, args.flush_service)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return stats


def _wait_for_subscribers(node: Any, pubs: list[Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(
        p.get_subscription_count() > 0 for p in pubs if "clock" not in p.topic_name
    ):
        time.sleep(0.1)
    time.sleep(0.5)  # let discovery finish matching readers/writers both ways


def _call_trigger(node: Any, srv_type: Any, name: str, timeout_s: float = 300.0) -> Any:
    import rclpy

    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=10.0):
        log.warning("flush service %s not available", name)
        return None
    future = client.call_async(srv_type.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout_s)
    resp = future.result()
    if resp is None:
        return None
    try:
        return json.loads(resp.message)
    except ValueError:
        return resp.message


if __name__ == "__main__":
    sys.exit(main())

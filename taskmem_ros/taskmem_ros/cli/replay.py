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
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from taskmem_ros.bags.feed import feed_bag
from taskmem_ros.bags.reader import BagError, ReadStats, bag_info, iter_bag
from taskmem_ros.store.engine import db_url

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
    p.add_argument("--flush-timeout", type=float, default=0.0, help="cap on the flush's answer, s (0 = none)")
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
    if not args.in_process and args.flush_service and stats.get("flush") is None:
        # The memorizer died or never answered: what it committed is safe, the tail is not.
        print(f"taskmem-replay: no answer from {args.flush_service}: is the memorizer running?", file=sys.stderr)
        return 3
    flush = stats.get("flush")
    if isinstance(flush, dict) and flush.get("flushed") is False:
        print(f"taskmem-replay: {args.flush_service} gave up: the memorizer stalled", file=sys.stderr)
        return 3
    return 0


def _bag_summary(read: ReadStats) -> dict[str, Any]:
    """What the reader salvaged and lost, for the JSON summary (not only stderr warnings)."""
    return {
        "bag_complete": read.complete,
        "bag_salvaged": read.salvaged,
        "bag_units_skipped": read.skipped,
        "bag_messages_undecodable": read.undecodable,
        "bag_messages_lost": read.lost,
        "bag_out_of_order": read.out_of_order,
        "bag_errors": list(read.errors),
    }


def replay_in_process(args: argparse.Namespace, info: Any) -> dict[str, Any]:
    from taskmem_ros.config import TaskMemConfig, load_config
    from taskmem_ros.memorizer import Memorizer
    from taskmem_ros.policy.factory import make_policy
    from taskmem_ros.store import EpisodicStore

    cfg = load_config(args.params) if args.params else TaskMemConfig()
    if args.db:
        cfg.store.url = db_url(args.db)
    with EpisodicStore(cfg.store) as store:
        policy = make_policy(cfg)
        memorizer = Memorizer(cfg, store, policy)
        read = ReadStats(str(args.bag))
        counts = feed_bag(
            memorizer,
            args.bag,
            cfg.segmenter.audio_rate,
            topics=args.topics,
            progress=not args.no_progress,
            stats=read,
        )
        memorizer.flush()
        policy.close()
        return {**counts, **memorizer.all_stats(), **_bag_summary(read)}


def _msg_class(msgtype: str) -> Any:
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def replay_on_graph(args: argparse.Namespace, info: Any) -> dict[str, Any]:
    import rclpy
    from rclpy.duration import Duration
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
        read = ReadStats(str(args.bag))
        first_acked: dict[str, bool] = {}
        sent: Counter[str] = Counter()
        for m in tqdm(
            iter_bag(args.bag, topics=args.topics, deserialize=False, stats=read),
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
            sent[pub.topic_name] += 1
            if m.topic not in first_acked:
                # A matched publisher is not a matched subscriber: discovery completes each way on
                # its own, and on a busy machine the subscriber can learn of us seconds later. Its
                # ack of a topic's first message proves the link both ways before the stream runs
                # on (transient-local history covers what it missed meanwhile).
                first_acked[m.topic] = pub.wait_for_all_acked(Duration(seconds=args.wait_subscribers))
                if not first_acked[m.topic]:
                    log.warning("%s: first message not acknowledged within %.0f s", m.topic, args.wait_subscribers)
                wall0, bag0 = time.monotonic(), m.log_time_ns
        # Published is not delivered: wait until subscribers have every message before the
        # flush closes the last clip (a reader left by a crashed node never acks: bounded).
        stats["all_acked"] = all(p.wait_for_all_acked(Duration(seconds=args.ack_timeout)) for p in pubs.values())
        stats.update(_bag_summary(read))
        if args.flush_service:
            stats["all_taken"] = _wait_until_taken(node, args.flush_service, sent, args.ack_timeout)
            stats["flush"] = _call_trigger(node, Trigger, args.flush_service, args.flush_timeout)
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


def _wait_until_taken(node: Any, flush_service: str, sent: Counter[str], stall_s: float) -> bool | None:
    """Acknowledged is not taken: a busy subscriber's queue can still hold the tail, and a flush
    now would close the last clip without it. Poll the memorizer's per-topic counts (its
    ``get_stats`` beside ``flush``) until it has taken all we sent on the topics it reads.
    Bounded by progress, not by total time: a slow machine waits longer, a stuck one
    ``stall_s``. None when the node does not report counts (another flush server)."""
    from std_srvs.srv import Trigger

    stats_service = flush_service.rsplit("/", 1)[0] + "/get_stats"
    last, last_change = -1, time.monotonic()
    while True:
        reply = _call_trigger(node, Trigger, stats_service, timeout_s=30.0)
        received = reply.get("received") if isinstance(reply, dict) else None
        if not isinstance(received, dict):
            return None
        topics = [t for t in sent if t in received]
        if all(received[t] >= sent[t] for t in topics):
            return True
        taken = sum(received[t] for t in topics)
        if taken != last:
            last, last_change = taken, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            log.warning(
                "subscriber stopped taking messages (%d of %d); flushing anyway", taken, sum(sent[t] for t in topics)
            )
            return False
        time.sleep(0.2)


def _call_trigger(node: Any, srv_type: Any, name: str, timeout_s: float = 0.0) -> Any:
    """Call ``name`` and wait for its answer as long as its server is on the graph.

    The flush drains the memorizer's backlog, which takes as long as the machine needs (the
    memorizer itself gives up only when its worker stops making progress), so no fixed
    deadline here: a slow machine gives a slow replay, not a lost answer. A server that goes
    away (crashed node) ends the wait; ``timeout_s`` > 0 caps it anyway.
    """
    import rclpy

    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=10.0):
        log.warning("service %s not available", name)
        return None
    future = client.call_async(srv_type.Request())
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
    while not future.done():
        rclpy.spin_until_future_complete(node, future, timeout_sec=1.0)
        if future.done():
            break
        if not client.service_is_ready():
            log.warning("flush service %s went away before answering", name)
            return None
        if deadline is not None and time.monotonic() > deadline:
            log.warning("no answer from %s within --flush-timeout %.0f s", name, timeout_s)
            return None
    resp = future.result()
    if resp is None:
        return None
    try:
        out = json.loads(resp.message)
    except ValueError:
        return resp.message
    if isinstance(out, dict):
        out["flushed"] = bool(resp.success)  # False: the memorizer stalled before its backlog was done
    return out


if __name__ == "__main__":
    sys.exit(main())

"""Single-process bringup: memorizer + task server on one MultiThreadedExecutor.

`ros2 launch taskmem_ros robot.launch.py` is the normal way on a robot; this runs the same
nodes where launch_ros is not installed (tests, pip-only installs, containers), and moves
both nodes through configure -> activate itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import rclpy

from taskmem_ros.nodes.lifecycle import bring_to_active, make_executor, shutdown, spin
from taskmem_ros.nodes.memorizer_node import MemorizerNode
from taskmem_ros.nodes.task_node import TaskNode

READY_LINE = "taskmem-bringup: memorizer and task_server active"


class Bringup:
    """Owns the two nodes and their executor; usable from tests without a subprocess."""

    def __init__(self, ros_args: list[str] | None = None) -> None:
        self.context = rclpy.Context()
        rclpy.init(args=["taskmem-bringup", *(ros_args or [])], context=self.context)
        self.memorizer = MemorizerNode(context=self.context)
        self.task_server = TaskNode(context=self.context)
        self.executor = make_executor([self.memorizer, self.task_server], self.context)
        self._thread: threading.Thread | None = None

    def activate(self) -> None:
        for node in (self.memorizer, self.task_server):
            if failed := bring_to_active(node):
                raise RuntimeError(failed)

    def spin_in_background(self) -> None:
        self._thread = threading.Thread(target=spin, args=(self.executor,), name="taskmem-executor", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Deactivate (drains the memorizer backlog into the store), clean up, stop."""
        for node in (self.memorizer, self.task_server):
            shutdown(node)
        self.executor.shutdown(timeout_sec=5.0)
        for node in (self.memorizer, self.task_server):
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self._thread is not None:
            self._thread.join(5.0)


@contextlib.contextmanager
def bringup_process(
    params: str | Path, log: str | Path, extra_args: Sequence[str] = (), timeout_s: float = 180.0
) -> Iterator[subprocess.Popen[bytes]]:
    """`taskmem-bringup` as its own process (as deployed), ready once both nodes are active;
    stopped with SIGINT so the memorizer drains its backlog into the store."""
    log = Path(log)
    cmd = [sys.executable, "-m", "taskmem_ros.nodes.bringup", "--params", str(params), *extra_args]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            deadline = time.monotonic() + timeout_s
            while READY_LINE not in log.read_text():
                if proc.poll() is not None:
                    raise RuntimeError(f"taskmem-bringup exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"taskmem-bringup not active after {timeout_s}s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args: list[str] = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i:]
    parser = argparse.ArgumentParser(prog="taskmem-bringup", description=__doc__.splitlines()[0])
    parser.add_argument("--params", help="ROS 2 params file (e.g. config/robot.yaml)")
    parser.add_argument("--db", help="override store.url with sqlite:///PATH (or a full SQLAlchemy URL)")
    parser.add_argument("--use-sim-time", action="store_true", help="follow /clock (bag replay)")
    args = parser.parse_args(argv)
    extra = ["--ros-args"] if not ros_args else []
    if args.params:
        extra += ["--params-file", args.params]
    if args.db:
        from taskmem_ros.store.engine import db_url

        url = db_url(args.db)
        extra += ["-p", f"store.url:={url}"]
    if args.use_sim_time:
        extra += ["-p", "use_sim_time:=true"]
    bringup = Bringup(ros_args + extra)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        bringup.activate()
    except RuntimeError as exc:
        print(f"taskmem-bringup: {exc}", file=sys.stderr)
        bringup.shutdown()
        return 1
    bringup.spin_in_background()
    print(READY_LINE, flush=True)
    stop.wait()
    bringup.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

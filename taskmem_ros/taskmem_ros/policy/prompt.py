"""The memorization prompt: one clip in, a list of short memories out (JSON; a text LLM: lines).

The model sees the clip's keyframes as timestamped video, the speech transcript, the most
recent memories (so it writes what is new, not what it already wrote) and, after Phase
Two, task-focus hints (what future questions tend to ask about). Both backends send the
same messages; only the transport differs. A text-only LLM (``text_llm``) gets the same
prompt with the keyframes replaced by the perception evidence lines (``policy.evidence``).
"""

from __future__ import annotations

from collections.abc import Sequence

from taskmem_ros.config import PolicyConfig
from taskmem_ros.llm.base import Message, subsample, text_part, video_part
from taskmem_ros.types import NS_PER_S, Clip, MemoryRecord, PolicyContext

SYSTEM_PROMPT = """You are the long-term memory of a robot. You watch one short clip of its camera \
(frames with timestamps in seconds from the start of the clip) and read the transcript of what was said.
Write down what the robot should remember to answer questions about its past later:
- who did what, where, and in which order; what people said (names, times, numbers, plans);
- objects, where they are put or taken from; text on signs and screens;
- one short, self-contained, factual sentence per entry; never guess what is not seen or heard.
Use "episodic" for events in this clip and "semantic" for lasting facts (names, where things are kept, habits).
Do not repeat anything the recent memories already say; write only what is new. If nothing new happened, \
return an empty list.
Reply with JSON only: {"entries": [{"kind": "episodic", "text": "...", "start_s": 0.0, "end_s": 4.5}]}"""


# A 135M text model cannot hold the JSON format: at 96 new tokens 75 % of SmolLM2-135M's outputs
# were cut off mid-JSON and none was valid (measured, README). One memory per line is a format it
# follows once shown by a worked example as a real user/assistant turn (the same example inside
# the system text did not take: measured); the same parser reads it (``policy.parsing``).
TEXT_SYSTEM_PROMPT = """You are the long-term memory of a robot. You read what was said in one short clip \
and what its camera detectors saw. Write the facts the robot should remember to answer questions later: \
what people said (places, times, names), text on signs, people and objects seen.
Write one short factual sentence per line, each line starting with "- ". At most 3 lines, no repeats, \
nothing the evidence does not say, nothing the recent memories already say. If nothing is new, write "- none"."""

TEXT_EXAMPLE: list[Message] = [
    {
        "role": "user",
        "content": "Transcript:\n[0.5-3.0 s] The scissors are in the top drawer.\n"
        "Seen by the camera detectors:\n[0.0-10.0 s] (ocr) Text visible: 'ROOM 5'.\n"
        "[0.0-10.0 s] (faces) One person visible.",
    },
    {"role": "assistant", "content": "- Someone said the scissors are in the top drawer.\n- A sign read 'ROOM 5'."},
]


def _seconds(ns: int) -> str:
    return f"{ns / NS_PER_S:.1f}"


def clip_messages(
    clip: Clip, context: PolicyContext, cfg: PolicyConfig, evidence: Sequence[str] | None = None
) -> list[Message]:
    """Chat messages for one clip (keyframes subsampled to ``policy.max_frames``). ``evidence``
    (perception lines, see ``policy.evidence``): a text-only model's prompt, without video."""
    parts = []
    if evidence is None and clip.keyframes:
        pick = subsample(len(clip.keyframes), cfg.max_frames)
        frames = [clip.keyframes[i] for i in pick]
        parts.append(
            video_part(
                [f.rgb for f in frames],
                [max(0.0, (f.stamp_ns - clip.start_ns) / NS_PER_S) for f in frames],
            )
        )
    lines = [f"Clip {clip.index} of stream '{clip.stream}', {clip.duration_s:.1f} seconds long."]
    if clip.transcript:
        lines.append("Transcript:")
        lines += [
            f"[{_seconds(s.start_ns - clip.start_ns)}-{_seconds(s.end_ns - clip.start_ns)} s] {s.text}"
            for s in clip.transcript
        ]
    elif clip.speech_segments:
        lines.append("Transcript: (speech was heard but could not be transcribed)")
    else:
        lines.append("Transcript: (no speech)")
    if evidence is not None:
        lines.append("Seen by the camera detectors:" + ("" if evidence else " (nothing detected)"))
        lines += list(evidence)
    recent = recent_context(context.recent_memories, cfg.context_chars)
    if recent:
        lines.append("Recent memories (already written - do not repeat):")
        lines += [f"- {t}" for t in recent]
    if context.focus_hints:
        lines.append("Task focus (future questions will ask about this):")
        lines += [f"- {h}" for h in context.focus_hints]
    if evidence is None:
        lines.append('Write the new memories as JSON: {"entries": [...]}')
    else:
        lines.append('Write the new memories, one per line starting with "- ":')
    parts.append(text_part("\n".join(lines)))
    if evidence is None:
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": parts}]
    user: Message = {"role": "user", "content": parts}
    return [{"role": "system", "content": TEXT_SYSTEM_PROMPT}, *(dict(m) for m in TEXT_EXAMPLE), user]


def recent_context(memories: Sequence[MemoryRecord], budget_chars: int) -> list[str]:
    """Newest memories that fit the budget, oldest first (reading order)."""
    picked: list[str] = []
    used = 0
    for rec in sorted(memories, key=lambda r: (r.end_ns, r.id), reverse=True):
        if used + len(rec.text) > budget_chars:
            break
        picked.append(rec.text)
        used += len(rec.text)
    return picked[::-1]

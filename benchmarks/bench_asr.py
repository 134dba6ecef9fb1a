#!/usr/bin/env python3
"""ASR benchmark: word error rate and real-time factor of pocketsphinx vs Whisper (faster-whisper).

The same 24 natural sentences, spoken by four espeak-ng voices, go through the memorizer's own
speech path (silero VAD -> recogniser) as 16 kHz mono and as 48 kHz stereo S16LE microphone
messages (decoded, downmixed and resampled by ``streams.audio.decode_audio``), plus the demo's
own track (``make demo``'s 79.5 s WAV cut into 10 s clips). WER is jiwer's over lower-cased,
punctuation-free words; the real-time factor is audio seconds per second of recognition (VAD
excluded), with every engine limited to ``--threads`` CPU threads.

    python benchmarks/bench_asr.py [--threads 2] [--engines pocketsphinx tiny.en base]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "taskmem_ros"))

from taskmem_ros.config import AsrConfig  # noqa: E402
from taskmem_ros.demo_media import DEMO_SPEECH, build_demo_media, speak  # noqa: E402
from taskmem_ros.fsutil import write_json  # noqa: E402
from taskmem_ros.streams.asr import PocketSphinxASR, SpeechRecognizer  # noqa: E402
from taskmem_ros.streams.audio import decode_audio, encode_audio  # noqa: E402
from taskmem_ros.streams.vad import SileroVAD  # noqa: E402
from taskmem_ros.streams.whisper_asr import WhisperASR, whisper_available  # noqa: E402

SENTENCES = (
    "Please put the blue folder on the shelf next to the window.",
    "The meeting with the design team has moved to the small conference room.",
    "I think the coffee machine on the third floor is broken again.",
    "Could you remind me to call the dentist after lunch?",
    "The parcel for Maria was left at the front desk this morning.",
    "Turn off the lights in the storage room when you leave.",
    "My glasses are on the kitchen table beside the fruit bowl.",
    "The new intern starts on Monday and will sit near the printer.",
    "We ran out of paper towels in the restroom by the elevator.",
    "The fire drill is planned for Wednesday afternoon.",
    "Remember that the garage door code was changed last week.",
    "The plants in the hallway need water every other day.",
    "Someone left a black umbrella in the lobby yesterday evening.",
    "The heating in the east wing should be fixed by tomorrow.",
    "Please keep the door to the server room closed at all times.",
    "The library books have to be returned before the end of the month.",
    "Our manager is travelling to Berlin for a conference next week.",
    "The recycling bins are emptied every Thursday morning.",
    "I moved the spare chairs from the lab into the basement.",
    "The window in the break room does not close properly.",
    "Lunch today is vegetable soup with fresh bread and cheese.",
    "The delivery truck will arrive at the loading dock around noon.",
    "Please ask the visitor to wait in the reception area.",
    "The battery of the cleaning robot is almost empty.",
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-x-rp")
SPEED = 160
PAD_S = 1.0  # silence before and after each sentence, like speech inside a clip


def words(text: str) -> str:
    import jiwer

    t = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])
    return str(t(text))


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return float(jiwer.wer([words(r) for r in refs], [words(h) or "<empty>" for h in hyps]))


def spoken(rate: int, channels: int) -> list[tuple[str, np.ndarray]]:
    """Each sentence as the memorizer would get it: PCM messages decoded to mono 16 kHz."""
    out = []
    for i, text in enumerate(SENTENCES):
        x = speak(text, rate=rate, voice=VOICES[i % len(VOICES)], speed=SPEED)
        pad = np.zeros(int(PAD_S * rate), np.float32)
        x = np.concatenate([pad, x, pad])
        pcm = encode_audio(x, "S16LE", channels)
        out.append((text, decode_audio(pcm, "S16LE", channels, rate, 0, 16000).samples))
    return out


def engines(names: list[str], threads: int) -> dict[str, SpeechRecognizer]:
    made: dict[str, SpeechRecognizer] = {}
    for name in names:
        if name == "pocketsphinx":
            made[name] = PocketSphinxASR()
            continue
        cfg = AsrConfig(model=name, cpu_threads=threads)
        if not whisper_available(cfg):
            print(f"  (skipping whisper {name}: faster-whisper or the model is not installed)")
            continue
        asr = WhisperASR(cfg)
        asr.load()
        made[f"whisper {name}"] = asr
    return made


def run_set(asr: SpeechRecognizer, vad: SileroVAD, items: list[tuple[str, np.ndarray]]) -> tuple[list[str], float]:
    hyps, busy = [], 0.0
    for _text, x in items:
        spans = vad.speech_segments(x, 16000)
        t = time.perf_counter()
        segs = asr.transcribe(x, 16000, spans) if spans else []
        busy += time.perf_counter() - t
        hyps.append(" ".join(s.text for s in segs))
    return hyps, busy


def demo_track() -> tuple[str, list[np.ndarray]]:
    with tempfile.TemporaryDirectory() as tmp:
        media = build_demo_media(tmp, overlays=(), pictures=())
        with wave.open(str(media.wav_path)) as wf:
            x = np.frombuffer(wf.readframes(wf.getnframes()), "<i2").astype(np.float32) / 32768
    clips = [x[i : i + 160000] for i in range(0, x.size, 160000)]
    return " ".join(t for _, t in DEMO_SPEECH), clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per engine (torch for VAD too)")
    ap.add_argument("--engines", nargs="+", default=["pocketsphinx", "tiny.en", "base"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "asr.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"synthesising {len(SENTENCES)} sentences x 2 input formats with espeak-ng ({', '.join(VOICES)})")
    sets = {"16 kHz mono": spoken(16000, 1), "48 kHz stereo": spoken(48000, 2)}
    refs = [t for t, _ in sets["16 kHz mono"]]
    audio_s = {k: sum(x.size for _, x in v) / 16000 for k, v in sets.items()}
    demo_ref, demo_clips = demo_track()
    vad = SileroVAD()
    rows: list[dict[str, Any]] = []
    for name, asr in engines(args.engines, args.threads).items():
        row: dict[str, Any] = {"engine": name}
        busy_total, audio_total = 0.0, 0.0
        for label, items in sets.items():
            hyps, busy = run_set(asr, vad, items)
            row[f"wer {label}"] = round(wer(refs, hyps), 3)
            row[f"examples {label}"] = [[r, h] for r, h in zip(refs[:3], hyps[:3], strict=True)]
            busy_total, audio_total = busy_total + busy, audio_total + audio_s[label]
        hyps, busy = run_set(asr, vad, [("", c) for c in demo_clips])
        row["wer demo track"] = round(wer([demo_ref], [" ".join(hyps)]), 3)
        row["demo transcript"] = " | ".join(h for h in hyps if h)
        busy_total, audio_total = busy_total + busy, audio_total + sum(c.size for c in demo_clips) / 16000
        row["asr_seconds"] = round(busy_total, 2)
        row["audio_seconds"] = round(audio_total, 1)
        row["realtime_factor"] = round(audio_total / busy_total, 1)
        rows.append(row)
        asr.close()
        print(f"  {name}: done ({busy_total:.1f} s of recognition)")

    cols = ("wer 16 kHz mono", "wer 48 kHz stereo", "wer demo track", "realtime_factor")
    print(f"\nWER (lower is better) and real-time factor on {args.threads} threads")
    print(f"{'engine':24s}" + "".join(f"{c:>20s}" for c in cols))
    for r in rows:
        print(f"{r['engine']:24s}" + "".join(f"{r[c]:>20}" for c in cols))
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "threads": args.threads,
        "sentences": len(SENTENCES),
        "voices": VOICES,
        "speed_wpm": SPEED,
        "rows": rows,
    }
    write_json(args.out, result)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

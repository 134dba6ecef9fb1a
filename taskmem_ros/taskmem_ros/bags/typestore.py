"""rosbags typestore for our bags: stock ROS 2 messages plus our audio messages.

ROS 2's own rosbag2/cv_bridge are not needed: `rosbags` (pure Python) serialises CDR
itself, so bags can be written and read on machines without a ROS install. It only
needs the message definitions, which live here as text so they stay in one place.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

IMAGE_MSGTYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_MSGTYPE = "sensor_msgs/msg/CompressedImage"
AUDIO_CHUNK_MSGTYPE = "taskmem_interfaces/msg/AudioChunk"
AUDIO_STAMPED_MSGTYPE = "audio_common_msgs/msg/AudioStamped"

# Must match taskmem_interfaces/msg/AudioChunk.msg field for field (a test checks it): the
# CDR layout is defined by the fields, so a mismatch would make bags unreadable on robots.
AUDIO_CHUNK_MSG = """\
# A chunk of interleaved audio samples (mirrors audio_common_msgs/AudioStamped, flattened).
std_msgs/Header header
uint8[] data
string format
uint32 channels
uint32 rate
"""

# audio_common_msgs as shipped by the ROS 2 `audio_common` package (mgonzs13/audio_common,
# 4.x: AudioStamped{header, Audio{AudioData, AudioInfo}}). Older releases lack
# ``int24_data``; when a bag embeds its own definitions (rosbag2 >= Iron, MCAP) the reader
# registers those instead, so this fallback only matters for old sqlite3 bags.
AUDIO_COMMON_MSGS: dict[str, str] = {
    "audio_common_msgs/msg/AudioData": """\
float32[] float32_data
int32[] int32_data
int32[] int24_data
int16[] int16_data
int8[] int8_data
uint8[] uint8_data
""",
    "audio_common_msgs/msg/AudioInfo": """\
int32 format
int32 channels
int32 rate
int32 chunk
""",
    "audio_common_msgs/msg/Audio": """\
audio_common_msgs/AudioData audio_data
audio_common_msgs/AudioInfo info
""",
    AUDIO_STAMPED_MSGTYPE: """\
std_msgs/Header header
audio_common_msgs/Audio audio
""",
}

# PortAudio sample-format codes used in AudioInfo.format (paFloat32, paInt32, paInt24, paInt16,
# paInt8, paUInt8) mapped to (AudioData field, our format string).

_STORE_PREFERENCE = ("ROS2_KILTED", "ROS2_JAZZY", "ROS2_HUMBLE")


def ros_store() -> Stores:
    """The ROS 2 distro store used for stock messages: Kilted (what rosbags calls LATEST and
    what our rclpy wheels are), else the newest LTS this rosbags version knows."""
    for name in _STORE_PREFERENCE:
        if hasattr(Stores, name):
            return Stores[name]
    return Stores.LATEST


def types_from_texts(texts: Mapping[str, str]) -> dict:
    """Parse ``{msgtype: .msg text}`` into a rosbags Typesdict (one dict, so they may cross-reference)."""
    typs: dict = {}
    for msgtype, text in texts.items():
        typs.update(get_types_from_msg(text, msgtype))
    return typs


def read_msg_dir(directory: str | os.PathLike[str], package: str | None = None) -> dict[str, str]:
    """Read every ``*.msg`` under a package's ``msg/`` folder as ``{pkg/msg/Name: text}``.

    ``directory`` may be the package folder or its ``msg`` folder; the package name defaults to
    the folder name, which is how both source trees and ``share/<pkg>`` installs are laid out.
    """
    path = Path(directory)
    msg_dir = path if path.name == "msg" else path / "msg"
    if not msg_dir.is_dir():
        raise FileNotFoundError(f"{msg_dir}: no msg/ directory with .msg files")
    pkg = package or msg_dir.parent.name
    return {f"{pkg}/msg/{f.stem}": f.read_text(encoding="utf-8") for f in sorted(msg_dir.glob("*.msg"))}


def find_interfaces_dir() -> Path | None:
    """Locate the live ``taskmem_interfaces`` definitions: an installed ament share dir first
    (what the running robot uses), then the source tree next to this package."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        cand = Path(prefix) / "share" / "taskmem_interfaces"
        if (cand / "msg").is_dir():
            return cand
    cand = Path(__file__).resolve().parents[3] / "taskmem_interfaces"
    return cand if (cand / "msg").is_dir() else None


def register_texts(store: Typestore, texts: Mapping[str, str], *, skip_known: bool = True) -> list[str]:
    """Register message definitions; returns the names added.

    With ``skip_known`` types already in the store are left alone (first definition wins),
    so callers can layer authoritative definitions (the bag's own) under fallbacks.
    """
    todo = {k: v for k, v in texts.items() if not (skip_known and k in store.fielddefs)}
    if not todo:
        return []
    typs = types_from_texts(todo)
    if skip_known:
        typs = {k: v for k, v in typs.items() if k not in store.fielddefs}
    store.register(typs)
    return sorted(typs)


def register_msg_dir(store: Typestore, directory: str | os.PathLike[str], package: str | None = None) -> list[str]:
    """Register all ``.msg`` definitions of one package directory (see :func:`read_msg_dir`)."""
    return register_texts(store, read_msg_dir(directory, package), skip_known=False)


def add_taskmem_types(store: Typestore, *, audio_common: bool = True) -> Typestore:
    """Add AudioChunk and (all-or-nothing) audio_common_msgs where the store lacks them."""
    register_texts(store, {AUDIO_CHUNK_MSGTYPE: AUDIO_CHUNK_MSG})
    # Mixing our AudioStamped with another flavour's AudioData would decode garbage, so the
    # whole family is skipped if any member is already defined (e.g. by a bag).
    if audio_common and not any(k in store.fielddefs for k in AUDIO_COMMON_MSGS):
        register_texts(store, AUDIO_COMMON_MSGS)
    return store


def make_typestore(
    *,
    msg_dirs: Iterable[str | os.PathLike[str]] = (),
    extra: Mapping[str, str] | None = None,
    audio_common: bool = True,
) -> Typestore:
    """A fresh (mutable) typestore: ROS 2 stock types, then ``extra`` and ``msg_dirs`` (which win
    over our built-in texts), then AudioChunk and audio_common_msgs where not yet defined."""
    store = get_typestore(ros_store())
    if extra:
        register_texts(store, extra)
    for directory in msg_dirs:
        register_texts(store, read_msg_dir(directory))
    return add_taskmem_types(store, audio_common=audio_common)


@functools.lru_cache(maxsize=1)
def default_typestore() -> Typestore:
    """Shared store for writing/reading our own bags. Do not register into it; use
    :func:`make_typestore` for a private copy."""
    return make_typestore()


def msg_fields(store: Typestore, msgtype: str) -> list[tuple[str, object]]:
    """Field list of a type, for comparing definitions regardless of comments/whitespace."""
    return [(name.lower(), desc) for name, desc in store.fielddefs[msgtype][1]]

"""Adapter artifacts on disk: checksums, metadata, validation (torch-free).

Two formats:

- steering: one ``.safetensors`` file holding ``steering_vector`` (float32, 1-D) and string
  metadata (``format="taskmem-steering"``, base model, layer, scale, ...);
- LoRA: a peft ``save_pretrained`` directory (``adapter_config.json`` +
  ``adapter_model.safetensors``), optionally with a ``taskmem_adapter.json`` sidecar
  (``adapter_id`` + free metadata).

Every file is read once: the sha256 and the parsed content come from the same bytes, so a file
replaced while it is being loaded can never pass a checksum it does not match. Anything
unreadable raises ``IncompatibleAdapter`` naming the path and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BaseModelMismatch, ChecksumMismatch, IncompatibleAdapter, require

STEERING_FORMAT = "taskmem-steering"
STEERING_VERSION = "1"
STEERING_TENSOR = "steering_vector"
STEERING_REQUIRED = ("format", "version", "base_model", "layer", "scale", "hidden_size", "vector_sha256")
LORA_CONFIG = "adapter_config.json"
LORA_WEIGHTS = "adapter_model.safetensors"
SIDECAR = "taskmem_adapter.json"
MAX_STEERING_BYTES = 64 << 20  # a vector is hidden_size floats (16 KiB at 4096); more is not ours
_CHUNK = 1 << 20


@dataclass(frozen=True)
class AdapterMeta:
    """What an adapter is and what it was made for; the slot and the services report this."""

    kind: str  # "steering" | "lora"
    adapter_id: str
    base_model: str
    path: str
    sha256: str  # of the artifact (file, or directory digest)
    layer: int | None = None  # steering only
    scale: float | None = None  # steering only
    hidden_size: int | None = None  # steering only
    extra: dict[str, Any] = field(default_factory=dict, hash=False)  # metrics, version, created, ...

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- checksums


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _dir_digest(file_hashes: Mapping[str, str]) -> str:
    """sha256 over sorted (relative posix path, file sha256) pairs: independent of listing order."""
    h = hashlib.sha256()
    for rel in sorted(file_hashes):
        h.update(rel.encode("utf-8") + b"\0" + file_hashes[rel].encode("ascii") + b"\n")
    return h.hexdigest()


def _dir_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def adapter_sha256(path: str | Path) -> str:
    """sha256 hex of a file, or of a directory (sorted relative path + file sha256 pairs), streamed."""
    p = Path(path)
    try:
        if p.is_dir():
            return _dir_digest({f.relative_to(p).as_posix(): _file_sha256(f) for f in _dir_files(p)})
        return _file_sha256(p)
    except OSError as exc:
        raise IncompatibleAdapter(f"cannot read adapter {str(p)!r}: {exc}") from exc


# --------------------------------------------------------------------------- safetensors header


def safetensors_header(data: bytes, where: str) -> dict[str, Any]:
    """Parse and bounds-check a safetensors header (8-byte LE length + JSON) without trusting it."""
    if len(data) < 8:
        raise IncompatibleAdapter(f"{where}: {len(data)} bytes is too short for a safetensors file (expected >= 8)")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise IncompatibleAdapter(
            f"{where}: header claims {n} bytes but only {len(data) - 8} follow (truncated or not safetensors)"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleAdapter(f"{where}: safetensors header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise IncompatibleAdapter(f"{where}: safetensors header is {type(header).__name__}, expected an object")
    payload = len(data) - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= payload
        ):
            raise IncompatibleAdapter(
                f"{where}: tensor {name!r} has data_offsets {offsets!r}, expected [start, end] within {payload} "
                "payload bytes (truncated file?)"
            )
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise IncompatibleAdapter(f"{where}: safetensors __metadata__ must map strings to strings, got {meta!r}")
    return header


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    try:
        if limit is not None and path.stat().st_size > limit:
            raise IncompatibleAdapter(
                f"{str(path)!r} is {path.stat().st_size} bytes, larger than a steering vector can be ({limit})"
            )
        return path.read_bytes()
    except OSError as exc:
        raise IncompatibleAdapter(f"cannot read adapter file {str(path)!r}: {exc}") from exc


def _json_object(data: bytes, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleAdapter(f"{where} is not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise IncompatibleAdapter(f"{where} holds a JSON {type(obj).__name__}, expected an object")
    return obj


# --------------------------------------------------------------------------- steering files


def vector_sha256(vector: np.ndarray) -> str:
    """sha256 of the float32 little-endian bytes: what ``vector_sha256`` in the metadata covers."""
    return sha256_bytes(np.ascontiguousarray(vector, dtype="<f4").tobytes())


def _int_field(meta: Mapping[str, str], key: str, where: str) -> int:
    try:
        return int(meta[key])
    except ValueError as exc:
        raise IncompatibleAdapter(f"{where}: metadata {key}={meta[key]!r} is not an integer") from exc


def parse_steering(data: bytes, path: str) -> tuple[AdapterMeta, np.ndarray]:
    """Validate a steering file's bytes; returns its metadata and the float32 vector."""
    where = f"steering adapter {path!r}"
    header = safetensors_header(data, where)
    meta: dict[str, str] = header.get("__metadata__") or {}
    if meta.get("format") != STEERING_FORMAT:
        raise IncompatibleAdapter(f"{where}: format is {meta.get('format')!r}, expected {STEERING_FORMAT!r}")
    if meta.get("version") != STEERING_VERSION:
        raise IncompatibleAdapter(f"{where}: version is {meta.get('version')!r}, expected {STEERING_VERSION!r}")
    missing = [k for k in STEERING_REQUIRED if not meta.get(k)]
    if missing:
        raise IncompatibleAdapter(f"{where}: metadata lacks {missing}, expected all of {list(STEERING_REQUIRED)}")
    st_numpy = require("safetensors.numpy")
    try:
        tensors = st_numpy.load(data)
    except Exception as exc:  # safetensors raises its own error types for every malformed layout
        raise IncompatibleAdapter(f"{where}: not a readable safetensors file ({exc})") from exc
    if STEERING_TENSOR not in tensors:
        raise IncompatibleAdapter(f"{where}: holds tensors {sorted(tensors)}, expected {STEERING_TENSOR!r}")
    vec = tensors[STEERING_TENSOR]
    if vec.dtype != np.float32 or vec.ndim != 1 or vec.size == 0:
        raise IncompatibleAdapter(
            f"{where}: {STEERING_TENSOR} is {vec.dtype} with shape {tuple(vec.shape)}, expected non-empty 1-D float32"
        )
    layer = _int_field(meta, "layer", where)
    hidden = _int_field(meta, "hidden_size", where)
    try:
        scale = float(meta["scale"])
    except ValueError as exc:
        raise IncompatibleAdapter(f"{where}: metadata scale={meta['scale']!r} is not a number") from exc
    if not math.isfinite(scale):
        raise IncompatibleAdapter(f"{where}: scale is {scale}, expected a finite number")
    if hidden != vec.size:
        raise IncompatibleAdapter(f"{where}: metadata hidden_size={hidden} but the vector has {vec.size} values")
    digest = vector_sha256(vec)
    if digest != meta["vector_sha256"]:
        raise IncompatibleAdapter(
            f"{where}: vector_sha256 is {digest}, metadata says {meta['vector_sha256']} (corrupted payload)"
        )
    if not np.isfinite(vec).all():
        raise IncompatibleAdapter(f"{where}: {STEERING_TENSOR} holds NaN/inf values")
    extra = _json_object(meta.get("extra", "{}").encode("utf-8"), f"{where}: metadata 'extra'")
    extra = {"version": meta["version"], **({"created": meta["created"]} if meta.get("created") else {}), **extra}
    am = AdapterMeta(
        kind="steering",
        adapter_id=meta.get("adapter_id") or Path(path).stem,
        base_model=meta["base_model"],
        path=path,
        sha256=sha256_bytes(data),
        layer=layer,
        scale=scale,
        hidden_size=hidden,
        extra=extra,
    )
    return am, vec.copy()


def read_steering(path: str | Path) -> tuple[AdapterMeta, np.ndarray]:
    p = Path(path)
    return parse_steering(_read_bytes(p, MAX_STEERING_BYTES), str(p))


# --------------------------------------------------------------------------- LoRA directories


def read_lora(path: str | Path) -> tuple[AdapterMeta, dict[str, Any], bytes]:
    """Validate a peft LoRA directory; returns metadata, the adapter config and the weight bytes.

    The config, weights and sidecar are hashed from the very bytes returned; other files (README)
    are hashed streamed.
    """
    root = Path(path)
    where = f"LoRA adapter {str(root)!r}"
    if not (root / LORA_CONFIG).is_file():
        raise IncompatibleAdapter(f"{where}: no {LORA_CONFIG}, expected a peft save_pretrained directory")
    if not (root / LORA_WEIGHTS).is_file():
        found = sorted(p.name for p in root.iterdir())
        raise IncompatibleAdapter(
            f"{where}: no {LORA_WEIGHTS} (found {found}); save with safe_serialization (pickled .bin is not loaded)"
        )
    kept = {LORA_CONFIG, LORA_WEIGHTS, SIDECAR}
    blobs: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    try:
        for f in _dir_files(root):
            rel = f.relative_to(root).as_posix()
            if rel in kept:
                blobs[rel] = f.read_bytes()
                hashes[rel] = sha256_bytes(blobs[rel])
            else:
                hashes[rel] = _file_sha256(f)
    except OSError as exc:
        raise IncompatibleAdapter(f"{where}: cannot read ({exc})") from exc
    config = _json_object(blobs[LORA_CONFIG], f"{where}: {LORA_CONFIG}")
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise IncompatibleAdapter(f"{where}: peft_type is {config.get('peft_type')!r}, expected 'LORA'")
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise IncompatibleAdapter(f"{where}: base_model_name_or_path is {base!r}, expected the base model's name")
    safetensors_header(blobs[LORA_WEIGHTS], f"{where}: {LORA_WEIGHTS}")
    extra: dict[str, Any] = {}
    adapter_id = root.name
    if SIDECAR in blobs:
        extra = _json_object(blobs[SIDECAR], f"{where}: {SIDECAR}")
        sid = extra.pop("adapter_id", None)
        if sid is not None and not isinstance(sid, str):
            raise IncompatibleAdapter(f"{where}: {SIDECAR} adapter_id is {sid!r}, expected a string")
        adapter_id = sid or adapter_id
    meta = AdapterMeta(
        kind="lora", adapter_id=adapter_id, base_model=base, path=str(root), sha256=_dir_digest(hashes), extra=extra
    )
    return meta, config, blobs[LORA_WEIGHTS]


# --------------------------------------------------------------------------- dispatch + verify


def adapter_kind(path: str | Path) -> str:
    """ "steering" for a .safetensors file, "lora" for a directory; anything else is refused."""
    p = Path(path)
    try:
        is_dir, is_file, exists = p.is_dir(), p.is_file(), p.exists()
    except (OSError, ValueError) as exc:  # e.g. an embedded NUL from a hostile service request
        raise IncompatibleAdapter(f"adapter path {str(p)!r} is not usable: {exc}") from exc
    if is_dir:
        return "lora"
    if is_file and p.suffix == ".safetensors":
        return "steering"
    if not exists:
        raise IncompatibleAdapter(f"adapter path {str(p)!r} does not exist")
    raise IncompatibleAdapter(
        f"adapter path {str(p)!r} is neither a .safetensors steering file nor a LoRA directory with {LORA_CONFIG}"
    )


def read_adapter(path: str | Path) -> AdapterMeta:
    """Metadata of a steering file or LoRA directory; raises IncompatibleAdapter for anything else."""
    if adapter_kind(path) == "steering":
        return read_steering(path)[0]
    return read_lora(path)[0]


def _same_model(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def verify(meta: AdapterMeta, *, expected_sha256: str = "", base_model: str, hidden_size: int, num_layers: int) -> None:
    """Refuse an adapter that is not the expected file or does not fit the loaded model.

    Base models are compared as names (trailing ``/`` ignored): pass the same model id the
    adapters were trained against.
    """
    want = expected_sha256.strip().lower()
    if want and want != meta.sha256:
        raise ChecksumMismatch(f"adapter {meta.path!r} has sha256 {meta.sha256}, expected {want}")
    if not _same_model(meta.base_model, base_model):
        raise BaseModelMismatch(
            f"adapter {meta.adapter_id!r} was made for base model {meta.base_model!r}, but {base_model!r} is loaded"
        )
    if meta.kind == "steering":
        if meta.layer is None or not 0 <= meta.layer < num_layers:
            raise IncompatibleAdapter(
                f"steering adapter {meta.adapter_id!r} targets layer {meta.layer}, expected 0..{num_layers - 1} "
                f"(the model has {num_layers} decoder layers)"
            )
        if meta.hidden_size != hidden_size:
            raise IncompatibleAdapter(
                f"steering adapter {meta.adapter_id!r} has hidden size {meta.hidden_size}, "
                f"expected {hidden_size} (the model's)"
            )

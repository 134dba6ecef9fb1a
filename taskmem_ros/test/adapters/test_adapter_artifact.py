"""Adapter artifacts on disk: checksums, metadata round trips, hostile files, verify()."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from adapter_helpers import BASE, HIDDEN, LAYERS, edit_json, flip_last_byte
from safetensors.numpy import save_file

from taskmem_ros.adapters import (
    AdapterError,
    BaseModelMismatch,
    ChecksumMismatch,
    IncompatibleAdapter,
    adapter_sha256,
    read_adapter,
    save_steering,
    verify,
)


def _vector(seed: int = 0, n: int = HIDDEN) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_sha256_of_file_and_directory(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 3_000_000)  # several streaming chunks
    assert adapter_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()

    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    for d, order in ((d1, ("b", "a", "sub/c")), (d2, ("sub/c", "a", "b"))):  # creation order must not matter
        for name in order:
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_text(name)
    assert adapter_sha256(d1) == adapter_sha256(d2)
    (d2 / "sub" / "c").write_text("changed")
    assert adapter_sha256(d1) != adapter_sha256(d2)
    (d2 / "sub" / "c").write_text("sub/c")
    (d2 / "a").rename(d2 / "a2")  # same bytes, different name
    assert adapter_sha256(d1) != adapter_sha256(d2)


def test_steering_round_trip(tmp_path: Path) -> None:
    vec = _vector()
    path = tmp_path / "focus.safetensors"
    meta = save_steering(path, vec, base_model=BASE, layer=1, scale=2.5, extra={"accuracy": 0.61, "round": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["focus.safetensors"]  # no temp file left behind
    assert meta.kind == "steering"
    assert meta.adapter_id == "focus"  # defaults to the file stem
    assert (meta.base_model, meta.layer, meta.scale, meta.hidden_size) == (BASE, 1, 2.5, HIDDEN)
    assert meta.path == str(path)
    assert meta.extra["accuracy"] == 0.61 and meta.extra["round"] == 3 and meta.extra["version"] == "1"
    assert meta.extra["created"].startswith("20")
    assert meta.sha256 == adapter_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    again = read_adapter(path)
    assert again == meta and read_adapter(str(path)).sha256 == meta.sha256  # stable
    named = save_steering(tmp_path / "x.safetensors", vec, base_model=BASE, layer=0, adapter_id="round-3")
    assert named.adapter_id == "round-3" and named.scale == 1.0 and named.sha256 != meta.sha256


def test_save_steering_accepts_torch_and_refuses_bad_input(tmp_path: Path) -> None:
    import torch

    meta = save_steering(tmp_path / "t.safetensors", torch.ones(HIDDEN, dtype=torch.bfloat16), base_model=BASE, layer=0)
    assert meta.hidden_size == HIDDEN
    bad = [
        dict(vector=np.ones((2, 3), np.float32)),
        dict(vector=np.array([1.0, np.nan], np.float32)),
        dict(vector=np.ones(4, np.float32), layer=-1),
        dict(vector=np.ones(4, np.float32), scale=float("inf")),
        dict(vector=np.ones(4, np.float32), extra={"obj": object()}),
        dict(vector=np.ones(4, np.float32), name="v.bin"),
    ]
    for case in bad:
        name = case.pop("name", "v.safetensors")
        kwargs = {"base_model": BASE, "layer": 0, **case}
        with pytest.raises(AdapterError):
            save_steering(tmp_path / name, kwargs.pop("vector"), **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors"]


def _foreign_safetensors(path: Path, fmt: str = "other", vec: np.ndarray | None = None) -> Path:
    v = _vector() if vec is None else vec
    meta = {
        "format": fmt,
        "version": "1",
        "base_model": BASE,
        "layer": "0",
        "scale": "1.0",
        "hidden_size": str(v.size),
        "vector_sha256": hashlib.sha256(v.astype("<f4").tobytes()).hexdigest(),
    }
    save_file({"steering_vector": v}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip_payload", "vector_sha256"),
        ("truncate", "truncated"),
        ("garbage", "safetensors"),
        ("empty", "too short"),
        ("missing", "does not exist"),
        ("wrong_format", "format is 'other'"),
        ("wrong_dtype", "float32"),
        ("header_not_json", "not JSON"),
        ("wrong_suffix", "neither"),
    ],
)
def test_hostile_steering_files(tmp_path: Path, damage: str, message: str) -> None:
    path = tmp_path / "v.safetensors"
    save_steering(path, _vector(), base_model=BASE, layer=0)
    if damage == "flip_payload":
        flip_last_byte(path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00this is not json at all, really" * 3)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "missing":
        path.unlink()
    elif damage == "wrong_format":
        _foreign_safetensors(path)
    elif damage == "wrong_dtype":
        _foreign_safetensors(path, fmt="taskmem-steering", vec=np.ones(HIDDEN, np.float64))
    elif damage == "header_not_json":
        data = bytearray(path.read_bytes())
        data[9] = 0xFF
        path.write_bytes(bytes(data))
    elif damage == "wrong_suffix":
        path = path.rename(tmp_path / "v.txt")
    with pytest.raises(IncompatibleAdapter, match=message) as err:
        read_adapter(path)
    assert str(path) in str(err.value)


def test_unusable_paths(tmp_path: Path) -> None:
    for bad in ("bad\0path.safetensors", str(tmp_path / "nope"), str(tmp_path)):
        with pytest.raises(IncompatibleAdapter, match=r"not usable|does not exist|no adapter_config\.json"):
            read_adapter(bad)


def test_lora_directory_meta(lora_a: Path, tmp_path: Path) -> None:
    meta = read_adapter(lora_a)
    assert (meta.kind, meta.adapter_id, meta.base_model) == ("lora", "lora_a", BASE)
    assert meta.layer is None and meta.sha256 == adapter_sha256(lora_a) and meta.extra == {}
    tagged = shutil.copytree(lora_a, tmp_path / "run7")
    (tagged / "taskmem_adapter.json").write_text(json.dumps({"adapter_id": "focus-r7", "metrics": {"acc": 0.5}}))
    meta2 = read_adapter(tagged)
    assert meta2.adapter_id == "focus-r7" and meta2.extra == {"metrics": {"acc": 0.5}}
    assert meta2.sha256 != meta.sha256  # the sidecar is part of the artifact


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_config", "no adapter_config.json"),
        ("config_garbage", "not valid JSON"),
        ("config_list", "expected an object"),
        ("not_lora", "peft_type is 'IA3'"),
        ("no_base", "base_model_name_or_path"),
        ("bin_only", "pickled .bin"),
        ("weights_truncated", "truncated"),
        ("sidecar_garbage", "taskmem_adapter.json"),
    ],
)
def test_hostile_lora_dirs(lora_a: Path, tmp_path: Path, damage: str, message: str) -> None:
    d = shutil.copytree(lora_a, tmp_path / "bad")
    cfg, weights = d / "adapter_config.json", d / "adapter_model.safetensors"
    if damage == "no_config":
        cfg.unlink()
    elif damage == "config_garbage":
        cfg.write_text("{ nope")
    elif damage == "config_list":
        cfg.write_text("[1, 2]")
    elif damage == "not_lora":
        edit_json(cfg, peft_type="IA3")
    elif damage == "no_base":
        edit_json(cfg, base_model_name_or_path=None)
    elif damage == "bin_only":
        weights.rename(d / "adapter_model.bin")
    elif damage == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:200])
    elif damage == "sidecar_garbage":
        (d / "taskmem_adapter.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(IncompatibleAdapter, match=message) as err:
        read_adapter(d)
    assert str(d) in str(err.value)


def test_verify(tmp_path: Path) -> None:
    meta = save_steering(tmp_path / "v.safetensors", _vector(), base_model=BASE, layer=1)
    fits = dict(base_model=BASE, hidden_size=HIDDEN, num_layers=LAYERS)
    verify(meta, expected_sha256="", **fits)
    verify(meta, expected_sha256=meta.sha256.upper(), **fits)
    verify(meta, expected_sha256="", **{**fits, "base_model": BASE + "/"})
    with pytest.raises(ChecksumMismatch, match=meta.sha256):
        verify(meta, expected_sha256="0" * 64, **fits)
    with pytest.raises(BaseModelMismatch, match="Qwen/Qwen3-VL-8B-Instruct"):
        verify(meta, expected_sha256="", **{**fits, "base_model": "Qwen/Qwen3-VL-8B-Instruct"})
    with pytest.raises(IncompatibleAdapter, match=r"layer 5, expected 0\.\.1"):
        verify(replace(meta, layer=5), expected_sha256="", **fits)
    with pytest.raises(IncompatibleAdapter, match="hidden size 64, expected 4096"):
        verify(meta, expected_sha256="", **{**fits, "hidden_size": 4096})
    for err in (ChecksumMismatch, BaseModelMismatch, IncompatibleAdapter):
        assert issubclass(err, AdapterError) and issubclass(err, ValueError)

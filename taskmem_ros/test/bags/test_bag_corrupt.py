"""Damaged bags: a clear BagError, or the readable messages plus an honest loss count.
Never an internal traceback, never a hang (every test runs under a timeout)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.bags import BagError, ReadStats, bag_info, iter_bag

pytestmark = pytest.mark.timeout(60)
STORAGES = ("sqlite3", "mcap")


def _copy(bags, key: str, tmp_path: Path) -> tuple[Path, Path, list[tuple[str, int, bytes]]]:
    """Copy a session bag; returns (bag dir, its storage file, the intact messages)."""
    src = bags[key][0]
    dst = tmp_path / key
    shutil.copytree(src, dst)
    storage_file = next(p for p in dst.iterdir() if p.suffix in (".db3", ".mcap"))
    intact = [(m.topic, m.log_time_ns, m.rawdata) for m in iter_bag(src)]
    return dst, storage_file, intact


def _read(bag: Path, **kw) -> tuple[list, ReadStats]:
    stats = ReadStats(str(bag))
    msgs = list(iter_bag(bag, stats=stats, **kw))
    for m in msgs:
        m.msg  # every yielded message must deserialize  # noqa: B018
    return msgs, stats


def _assert_subset_in_order(msgs, intact) -> None:
    got = [(m.topic, m.log_time_ns, m.rawdata) for m in msgs]
    assert [t for _, t, _ in got] == sorted(t for _, t, _ in got)
    assert set(got) <= set(intact)


@pytest.mark.parametrize("storage", STORAGES)
def test_truncated_midway_yields_prefix_and_counts_loss(bags, storage, tmp_path):
    bag, f, intact = _copy(bags, storage, tmp_path)
    with f.open("r+b") as fh:
        fh.truncate(f.stat().st_size // 2)
    msgs, stats = _read(bag)
    assert 0 < len(msgs) < len(intact)
    _assert_subset_in_order(msgs, intact)
    assert not stats.complete and stats.salvaged and stats.errors
    assert stats.expected == len(intact) and stats.lost == len(intact) - len(msgs)
    # the readable part is the beginning of the recording
    assert [m.log_time_ns for m in msgs] == [t for _, t, _ in intact[: len(msgs)]]
    info = bag_info(bag)
    assert not info.complete and info.message_count == len(msgs)
    with pytest.raises(BagError, match="damaged"):
        list(iter_bag(bag, strict=True))


@pytest.mark.parametrize("storage", STORAGES)
def test_truncated_to_a_few_bytes(bags, storage, tmp_path):
    bag, f, _ = _copy(bags, storage, tmp_path)
    with f.open("r+b") as fh:
        fh.truncate(100)
    try:
        msgs, stats = _read(bag)
    except BagError as exc:
        assert f.name in str(exc)
    else:
        assert msgs == [] and stats.errors and not stats.complete


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("size", [0, 5000])
def test_empty_or_garbage_file_is_a_bag_error(bags, storage, size, tmp_path):
    bag, f, _ = _copy(bags, storage, tmp_path)
    f.write_bytes(os.urandom(size))
    with pytest.raises(BagError, match="empty" if size == 0 else "bad magic") as exc:
        iter_bag(bag)  # raised eagerly, before iteration
    assert str(bag) in str(exc.value)
    with pytest.raises(BagError):
        bag_info(bag)


def test_sqlite_garbage_in_the_middle(bags, tmp_path):
    bag, f, intact = _copy(bags, "sqlite3", tmp_path)
    with f.open("r+b") as fh:
        fh.seek(f.stat().st_size // 2)
        fh.write(os.urandom(8192))
    msgs, stats = _read(bag)
    _assert_subset_in_order(msgs, intact)
    assert stats.errors and stats.skipped >= 1
    assert len(intact) - 4 <= len(msgs) < len(intact)  # only the rows on broken pages are lost


def test_mcap_garbage_over_a_chunk_header(bags, tmp_path):
    bag, f, intact = _copy(bags, "mcap", tmp_path)
    data = f.read_bytes()
    chunks, pos = [], 8  # walk the top-level records: opcode u8, length u64, body
    while pos < len(data) - 8 and data[pos] not in (0x02, 0x0F):
        if data[pos] == 0x06:
            chunks.append(pos)
        pos += 9 + struct.unpack_from("<Q", data, pos + 1)[0]
    assert len(chunks) >= 3
    second = chunks[1]
    with f.open("r+b") as fh:
        fh.seek(second + 9)
        fh.write(os.urandom(40))  # start/end time, sizes, CRC, compression name
    msgs, stats = _read(bag)
    _assert_subset_in_order(msgs, intact)
    assert 0 < len(msgs) < len(intact)
    assert stats.errors and not stats.complete


@pytest.mark.parametrize("storage", STORAGES)
def test_missing_metadata_reads_storage_directly(bags, storage, tmp_path):
    bag, _, intact = _copy(bags, storage, tmp_path)
    (bag / "metadata.yaml").unlink()
    msgs, stats = _read(bag)
    assert [(m.topic, m.log_time_ns, m.rawdata) for m in msgs] == intact
    assert stats.salvaged and any("metadata.yaml missing" in e for e in stats.errors)
    assert bag_info(bag).message_count == len(intact)
    with pytest.raises(BagError, match=r"metadata\.yaml missing"):
        list(iter_bag(bag, strict=True))


def test_unparsable_metadata_is_ignored(bags, tmp_path):
    bag, _, intact = _copy(bags, "mcap", tmp_path)
    (bag / "metadata.yaml").write_bytes(b"\x00\xff: [unclosed\n" + os.urandom(64))
    msgs, stats = _read(bag)
    assert len(msgs) == len(intact) and any("unreadable" in e for e in stats.errors)


def test_storage_file_listed_but_missing(bags, tmp_path):
    bag, f, _ = _copy(bags, "sqlite3", tmp_path)
    f.unlink()
    with pytest.raises(BagError, match="none of those files exist"):
        iter_bag(bag)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p, id="does-not-exist"),
        pytest.param(lambda p: (p.mkdir(), p)[1], id="empty-dir"),
        pytest.param(lambda p: (p.mkdir(), (p / "notes.txt").write_text("hi"), p)[2], id="wrong-dir"),
        pytest.param(lambda p: (p.with_suffix(".txt").write_text("x"), p.with_suffix(".txt"))[1], id="text-file"),
    ],
)
def test_not_a_bag(tmp_path, make):
    path = make(tmp_path / "thing")
    with pytest.raises(BagError) as exc:
        iter_bag(path)
    assert str(path) in str(exc.value)
    assert any(w in exc.value.reason for w in ("does not exist", "no metadata.yaml", "not a rosbag2 bag"))


def test_wrong_extension(bags, tmp_path):
    _, f, _ = _copy(bags, "mcap", tmp_path)
    wrong = f.with_suffix(".db3")
    f.rename(wrong)
    with pytest.raises(BagError, match="not an SQLite file"):
        iter_bag(wrong)


@pytest.mark.parametrize("storage", [*STORAGES, "mcap-compressed"])
def test_random_damage_never_crashes(bags, storage, tmp_path):
    """A small fuzz: truncations and overwrites anywhere give BagError or a clean partial read."""
    rng = random.Random(1234)
    src, _, intact = _copy(bags, storage, tmp_path / "src")
    size = next(p for p in src.iterdir() if p.suffix in (".db3", ".mcap")).stat().st_size
    for i in range(12):
        bag = tmp_path / f"case{i}"
        shutil.copytree(src, bag)
        f = next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))
        off = rng.randrange(size)
        with f.open("r+b") as fh:
            if rng.random() < 0.5:
                fh.truncate(off)
            else:
                fh.seek(off)
                fh.write(bytes(rng.randrange(256) for _ in range(rng.choice([1, 16, 512]))))
        if rng.random() < 0.3:
            (bag / "metadata.yaml").unlink()
        try:
            stats = ReadStats(str(bag))
            msgs = list(iter_bag(bag, stats=stats))
            bag_info(bag)
        except BagError:
            continue
        assert len(msgs) <= len(intact)
        for m in msgs:
            with contextlib.suppress(BagError):  # payload hit by garbage: reported per message
                m.msg  # noqa: B018


def test_garbage_payload_is_skipped_and_counted(tmp_path):
    """A structurally fine bag whose message bytes are not valid CDR for their type."""
    from rosbags.rosbag2 import Writer

    from taskmem_ros.bags.typestore import IMAGE_MSGTYPE, default_typestore

    store = default_typestore()
    t = store.types
    good = t[IMAGE_MSGTYPE](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"),
        height=1,
        width=1,
        encoding="rgb8",
        is_bigendian=0,
        step=3,
        data=np.array([1, 2, 3], np.uint8),
    )
    bag = tmp_path / "payload"
    with Writer(bag, version=9) as w:
        conn = w.add_connection("/camera/image_raw", IMAGE_MSGTYPE, typestore=store)
        w.write(conn, 1, store.serialize_cdr(good, IMAGE_MSGTYPE))
        w.write(conn, 2, b"\x00\x01\x00\x00" + b"\xff" * 7)  # valid encapsulation, truncated body
        w.write(conn, 3, store.serialize_cdr(good, IMAGE_MSGTYPE))
    msgs, stats = _read(bag)
    assert [m.log_time_ns for m in msgs] == [1, 3] and stats.undecodable == 1 and not stats.complete
    lazy = list(iter_bag(bag, deserialize=False))
    assert len(lazy) == 3
    with pytest.raises(BagError, match="cannot deserialize"):
        lazy[1].msg  # noqa: B018
    with pytest.raises(BagError):
        list(iter_bag(bag, strict=True))

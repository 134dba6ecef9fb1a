"""Read rosbag2 bags (sqlite3 or MCAP) without ROS, in log-time order, surviving damage.

Robots get switched off mid-recording: rosbag2 then leaves a bag without ``metadata.yaml``, an
MCAP without its footer/index, or a truncated sqlite file. Memory built from such a bag is
still valuable, so instead of failing on the first broken byte the reader falls back to
record-level salvage, yields every message it can still decode and counts what it lost
(:class:`ReadStats`). Only a path that is not a bag at all, or whose every storage file is
unusable as a container, raises :class:`BagError`.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import logging
import re
import sqlite3
import struct
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rosbags.typesys import get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from taskmem_ros.bags.errors import BagError
from taskmem_ros.bags.typestore import add_taskmem_types, ros_store
from taskmem_ros.types import NS_PER_S

log = logging.getLogger(__name__)

HEADER_TYPE = "std_msgs/msg/Header"
STORAGE_SUFFIXES = {".db3": "sqlite3", ".mcap": "mcap"}
_MCAP_MAGIC = b"\x89MCAP0\r\n"
_SQLITE_MAGIC = b"SQLite format 3\x00"

# (msgtype, definition format "ros2msg"/"ros2idl", text) as found in a bag
_Def = tuple[str, str, str]


@dataclass(frozen=True)
class BagMessage:
    """One message as stored: CDR bytes plus enough to decode them on demand.

    ``stamp_ns`` is the header stamp when the type starts with a ``std_msgs/Header`` whose
    stamp is set (what the sensor meant), else the log time (when rosbag2 received it).
    ``msg`` deserialises lazily, so filtering/counting a bag never pays for image decoding.
    """

    topic: str
    msgtype: str
    stamp_ns: int
    log_time_ns: int
    rawdata: bytes
    typestore: Typestore = field(repr=False, compare=False)

    @functools.cached_property
    def msg(self) -> Any:
        try:
            return self.typestore.deserialize_cdr(self.rawdata, self.msgtype)
        except KeyError:
            raise BagError(self.topic, f"no definition for message type {self.msgtype!r}") from None
        except Exception as exc:  # rosbags SerdeError, struct.error, ...
            raise BagError(self.topic, f"cannot deserialize {self.msgtype} at {self.log_time_ns}: {exc}") from None


@dataclass
class ReadStats:
    """What one :func:`iter_bag` pass read and lost; ``complete`` is the one-line verdict."""

    path: str
    storage: str = ""
    messages: int = 0  # yielded (after the topic filter)
    expected: int | None = None  # from metadata/index, for the selected topics, when known
    skipped: int = 0  # unreadable units met while salvaging (rows, chunks, records)
    salvaged: bool = False  # a fallback path was used
    out_of_order: int = 0  # salvaged messages older than one already yielded (yielded anyway)
    undecodable: int = 0  # read but not deserializable (garbage payload); skipped when deserializing
    errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int | None:
        """Messages known to exist but not yielded (None when the bag's index is gone too)."""
        return None if self.expected is None else max(0, self.expected - self.messages)

    @property
    def complete(self) -> bool:
        return not self.errors and self.skipped == 0 and self.undecodable == 0 and not self.lost

    def _error(self, msg: str) -> None:
        log.warning("%s: %s", self.path, msg)
        self.errors.append(msg)


@dataclass(frozen=True)
class BagInfo:
    """Summary of a bag. From ``metadata.yaml``/index when intact, else from a salvage scan."""

    path: str
    storage: str
    topics: dict[str, str]  # topic -> msgtype
    counts: dict[str, int]  # topic -> messages
    message_count: int
    start_ns: int
    end_ns: int
    complete: bool = True
    errors: tuple[str, ...] = ()

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def duration_s(self) -> float:
        return self.duration_ns / NS_PER_S


# --------------------------------------------------------------------------- layout


@dataclass
class _Layout:
    path: Path  # what the user passed (dir or file)
    storage: str
    files: list[Path]
    has_metadata: bool
    metadata: dict[str, Any] | None = None
    compressed: bool = False


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _load_metadata(path: Path) -> dict[str, Any] | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        info = data["rosbag2_bagfile_information"]
        return info if isinstance(info, dict) else None
    except Exception:
        return None


def _magic_problem(path: Path) -> str | None:
    """Cheap container check (no handle kept open) so garbage/empty files fail up front."""
    magic = _MCAP_MAGIC if path.suffix == ".mcap" else _SQLITE_MAGIC
    try:
        with path.open("rb") as f:
            head = f.read(len(magic))
    except OSError as exc:
        return f"{path.name}: cannot open ({exc.strerror})"
    if not head:
        return f"{path.name}: file is empty"
    if head != magic:
        kind = "MCAP" if path.suffix == ".mcap" else "SQLite"
        return f"{path.name}: not an {kind} file (bad magic bytes; garbage or wrong extension?)"
    return None


def _checked(layout: _Layout) -> _Layout:
    if layout.compressed:
        return layout
    problems = [p for p in map(_magic_problem, layout.files) if p]
    if len(problems) == len(layout.files):
        raise BagError(layout.path, "; ".join(problems))
    return layout


def _layout(path: Path) -> _Layout:
    return _checked(_raw_layout(path))


def _raw_layout(path: Path) -> _Layout:
    """Classify ``path`` without opening storage, so obviously wrong paths fail immediately."""
    if not path.exists():
        raise BagError(path, "does not exist")
    if path.is_file():
        if path.name == "metadata.yaml":
            return _raw_layout(path.parent)
        storage = STORAGE_SUFFIXES.get(path.suffix)
        if storage is None:
            raise BagError(path, "not a rosbag2 bag: expected a bag directory, a .db3 or a .mcap file")
        return _Layout(path, storage, [path], has_metadata=False)
    if not path.is_dir():
        raise BagError(path, "not a file or directory")
    meta_path = path / "metadata.yaml"
    meta = _load_metadata(meta_path) if meta_path.is_file() else None
    found = sorted((p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file()), key=_natural_key)
    if meta is not None:
        names = [Path(str(x)).name for x in meta.get("relative_file_paths") or []]
        files = [path / n for n in names if (path / n).is_file()]
        compressed = bool(meta.get("compression_mode")) and str(meta.get("compression_mode")).lower() != "none"
        storage = str(meta.get("storage_identifier", ""))
        if storage not in STORAGE_SUFFIXES.values() and files:
            storage = STORAGE_SUFFIXES.get(files[0].suffix, storage)
        if not files and not compressed:
            files = found
        if not files:
            raise BagError(path, f"metadata.yaml lists {names} but none of those files exist")
        return _Layout(path, storage, files, has_metadata=True, metadata=meta, compressed=compressed)
    if not found:
        reason = "metadata.yaml is unreadable" if meta_path.is_file() else "no metadata.yaml"
        inner = sorted(p.name for p in path.iterdir() if (p / "metadata.yaml").is_file())[:5]
        hint = f" (bags inside: {', '.join(inner)})" if inner else ""
        raise BagError(path, f"not a rosbag2 bag directory: {reason} and no .db3/.mcap files{hint}")
    storages = {STORAGE_SUFFIXES[p.suffix] for p in found}
    if len(storages) > 1:
        raise BagError(path, f"mixes storage formats {sorted(storages)}; cannot tell which is the bag")
    return _Layout(path, storages.pop(), found, has_metadata=meta_path.is_file())


# --------------------------------------------------------------------------- typestore


def _bag_typestore(defs: Iterable[_Def]) -> Typestore:
    """Stock ROS types, then the bag's own definitions (authoritative for custom types), then ours."""
    store = get_typestore(ros_store())
    for msgtype, fmt, text in defs:
        if msgtype in store.fielddefs or not text.strip():
            continue
        try:
            typs = get_types_from_idl(text) if fmt in ("ros2idl", "idl") else get_types_from_msg(text, msgtype)
            store.register({k: v for k, v in typs.items() if k not in store.fielddefs})
        except Exception as exc:  # a bad embedded definition must not hide the rest of the bag
            log.warning("ignoring unparsable definition of %s in bag: %s", msgtype, exc)
    return add_taskmem_types(store)


def _header_stamp_reader(store: Typestore, msgtype: str) -> Callable[[bytes], int] | None:
    """Fast path to the header stamp: a leading std_msgs/Header puts sec/nanosec at CDR offset 4,
    so large images need not be deserialised just to be ordered."""
    fields = store.fielddefs.get(msgtype, (None, []))[1]
    if not fields or fields[0][1][1] != HEADER_TYPE:
        return None

    def read(raw: bytes) -> int:
        if len(raw) < 12:
            return 0
        sec, nsec = struct.unpack_from("<iI" if raw[1] == 1 else ">iI", raw, 4)
        return int(sec) * NS_PER_S + int(nsec)

    return read


# --------------------------------------------------------------------------- happy path (rosbags)


def _rosbags_messages(
    target: Path, topics: Collection[str] | None, stats: ReadStats, count_expected: bool
) -> Generator[Any, None, None]:
    """Yield ``("defs", list)`` once, then ``(topic, msgtype, log_time, raw)``; raises on the first problem."""
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.rosbag2 import Reader

    reader = Reader(target)
    reader.open()
    try:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        defs = [
            (c.msgtype, "ros2idl" if c.msgdef.format == MessageDefinitionFormat.IDL else "ros2msg", c.msgdef.data)
            for c in reader.connections
        ]
        if count_expected:
            stats.expected = (stats.expected or 0) + sum(c.msgcount for c in conns)
        yield ("defs", defs)
        if not conns:
            return
        for conn, t, raw in reader.messages(connections=conns):
            yield (conn.topic, conn.msgtype, t, bytes(raw))
    finally:
        reader.close()


# --------------------------------------------------------------------------- salvage: sqlite3


def _sqlite_salvage(path: Path, topics: Collection[str] | None, stats: ReadStats) -> Iterator[Any]:
    """Row-level recovery: index readable rows (skipping corrupt B-tree pages), sort by
    timestamp, then fetch each row's data on its own so one bad page costs only its rows."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
        # Makes SQLite trust the real file size instead of the header's page count, which it
        # otherwise treats as corruption for any truncated file (read-only: nothing is written).
        con.execute("PRAGMA writable_schema=ON")
    except sqlite3.Error as exc:
        raise _Unreadable(f"cannot open sqlite database: {exc}") from None
    try:
        try:
            topic_rows = con.execute("SELECT id, name, type FROM topics").fetchall()
        except sqlite3.Error as exc:
            raise _Unreadable(f"not a readable rosbag2 sqlite3 file (topics table: {exc})") from None
        defs: list[_Def] = []
        with contextlib.suppress(sqlite3.Error):  # schema < 4 (pre-Iron) has no definitions table
            defs = [
                (str(a), str(b), str(c))
                for a, b, c in con.execute(
                    "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
                )
            ]
        yield ("defs", defs)
        tmap = {int(i): (str(n), str(t)) for i, n, t in topic_rows if topics is None or n in topics}
        if not tmap:
            return

        index: list[tuple[int, int, int]] = []  # (timestamp, rowid, topic_id)
        last = 0
        query = "SELECT id, topic_id, timestamp FROM messages WHERE id > ? ORDER BY id"
        while True:
            try:
                for rowid, tid, ts in con.execute(query, (last,)):
                    last = rowid
                    if tid in tmap:
                        index.append((int(ts), int(rowid), int(tid)))
                break
            except sqlite3.Error as exc:
                stats._error(f"{path.name}: messages unreadable after row {last}: {exc}")
                stats.skipped += 1
                nxt = _sqlite_next_readable(con, last)
                if nxt is None:
                    break
                last = nxt - 1
        index.sort()
        for ts, rowid, tid in index:
            try:
                row = con.execute("SELECT data FROM messages WHERE id = ?", (rowid,)).fetchone()
            except sqlite3.Error as exc:
                stats.skipped += 1
                if stats.skipped <= 3:
                    stats._error(f"{path.name}: row {rowid} unreadable: {exc}")
                continue
            if row is None or row[0] is None:
                stats.skipped += 1
                continue
            topic, msgtype = tmap[tid]
            yield (topic, msgtype, ts, bytes(row[0]))
    finally:
        con.close()


def _sqlite_next_readable(con: sqlite3.Connection, after: int) -> int | None:
    """First rowid beyond a corrupt region: exponential probing, then bisection back."""

    def probe(k: int) -> int | bool | None:
        try:
            row = con.execute("SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT 1", (k,)).fetchone()
        except sqlite3.Error:
            return False
        return None if row is None else int(row[0])

    bad, step = after, 1
    while step < 2**40:
        r = probe(after + step)
        if r is None:
            return None  # past the end of the table
        if r is not False:
            good = after + step
            while good - bad > 1:  # narrow down to lose as few rows as possible
                mid = (good + bad) // 2
                if probe(mid) is False:
                    bad = mid
                else:
                    good = mid
            res = probe(good)
            return None if res is None or res is False else int(res)
        bad = after + step
        step *= 2
    return None


# --------------------------------------------------------------------------- salvage: mcap


class _Truncated(Exception):
    pass


class _Unreadable(Exception):
    """The storage file cannot be used as a container at all (nothing to salvage)."""


def _take(buf: bytes | memoryview, pos: int, n: int) -> tuple[bytes, int]:
    if pos + n > len(buf):
        raise _Truncated(f"record needs {n} bytes at {pos}, only {len(buf) - pos} left")
    return bytes(buf[pos : pos + n]), pos + n


def _u(buf: bytes | memoryview, pos: int, fmt: str) -> tuple[int, int]:
    size = struct.calcsize(fmt)
    raw, pos = _take(buf, pos, size)
    return struct.unpack(fmt, raw)[0], pos


def _s(buf: bytes | memoryview, pos: int) -> tuple[str, int]:
    n, pos = _u(buf, pos, "<I")
    raw, pos = _take(buf, pos, n)
    return raw.decode("utf-8", "replace"), pos


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        out = data
    elif compression == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14
        except ImportError:
            from backports import zstd  # type: ignore[no-redef]
        out = zstd.decompress(data)
    elif compression == "lz4":
        import lz4.frame  # type: ignore[import-not-found]

        out = lz4.frame.decompress(data)
    else:
        raise ValueError(f"unknown chunk compression {compression!r}")
    if len(out) != size:
        raise ValueError(f"chunk decompressed to {len(out)} bytes, index says {size}")
    return out


def _collect(handle: Callable[..., None], batch: list[Any], op: int, rec: bytes) -> None:
    handle(op, rec, batch)


def _chunk(rec: bytes, truncated: bool, handle: Callable[[int, bytes], None]) -> None:
    """Parse an MCAP Chunk record and hand each inner record to ``handle``. A chunk cut off by
    truncation is still usable when uncompressed (rosbags' and rosbag2's default): the
    records before the cut are intact."""
    import zlib

    _start, p = _u(rec, 0, "<Q")
    _end, p = _u(rec, p, "<Q")
    usize, p = _u(rec, p, "<Q")
    crc, p = _u(rec, p, "<I")
    comp, p = _s(rec, p)
    clen, p = _u(rec, p, "<Q")
    if truncated:
        if comp:
            raise _Truncated(f"{comp}-compressed chunk cut off; nothing recoverable")
        inner = rec[p : p + clen]
    else:
        cdata, p = _take(rec, p, clen)
        inner = _decompress(cdata, comp, usize)
        if crc and zlib.crc32(inner) != crc:
            raise ValueError("chunk CRC mismatch")
    q = 0
    while q < len(inner):
        iop, q = _u(inner, q, "<B")
        ilen, q = _u(inner, q, "<Q")
        irec, q = _take(inner, q, ilen)
        handle(iop, irec)


def _mcap_salvage(path: Path, topics: Collection[str] | None, stats: ReadStats) -> Iterator[Any]:
    """Sequential MCAP record scan that needs neither footer nor index. Chunks whose CRC or
    compression is broken are skipped whole; a truncated tail ends the scan."""
    schemas: dict[int, tuple[str, str, str]] = {}  # id -> (name, encoding, text)
    channels: dict[int, tuple[str, int]] = {}  # id -> (topic, schema id)
    defs_sent = 0
    last_time = -(2**63)

    def handle(op: int, rec: bytes, out: list[tuple[int, int, bytes]]) -> None:
        if op == 0x03:
            sid, p = _u(rec, 0, "<H")
            name, p = _s(rec, p)
            enc, p = _s(rec, p)
            n, p = _u(rec, p, "<I")
            text, p = _take(rec, p, n)
            schemas[sid] = (name, enc, text.decode("utf-8", "replace"))
        elif op == 0x04:
            cid, p = _u(rec, 0, "<H")
            sid, p = _u(rec, p, "<H")
            topic, p = _s(rec, p)
            channels[cid] = (topic, sid)
        elif op == 0x05:
            cid, p = _u(rec, 0, "<H")
            _seq, p = _u(rec, p, "<I")
            log_time, p = _u(rec, p, "<Q")
            _publish_time, p = _u(rec, p, "<Q")
            out.append((log_time, cid, rec[p:]))

    try:
        f = path.open("rb")
    except OSError as exc:
        raise _Unreadable(f"cannot open: {exc.strerror}") from None
    with f:
        size = path.stat().st_size
        magic = f.read(8)
        if not magic:
            raise _Unreadable("file is empty")
        if magic != _MCAP_MAGIC:
            raise _Unreadable("not an MCAP file (bad magic bytes)")
        pos = 8
        while pos < size:
            head = f.read(9)
            if len(head) < 9:
                stats._error(f"{path.name}: truncated record header at byte {pos}")
                stats.skipped += 1
                break
            op, length = head[0], struct.unpack("<Q", head[1:])[0]
            if op == 0 or (0x10 <= op < 0x80):
                stats._error(f"{path.name}: corrupt record (opcode {op:#x}) at byte {pos}; stopping")
                stats.skipped += 1
                break
            start, avail = pos, min(length, size - pos - 9)
            truncated = avail < length
            pos += 9 + length
            if op in (0x02, 0x0F):  # footer / data end: the summary section follows
                break
            if op not in (0x03, 0x04, 0x05, 0x06):
                f.seek(avail, 1)
                if truncated:
                    stats._error(f"{path.name}: file ends inside record at byte {start} (truncated)")
                    stats.skipped += 1
                    break
                continue
            rec = f.read(avail)
            batch: list[tuple[int, int, bytes]] = []
            try:
                if op == 0x06:
                    _chunk(rec, truncated, functools.partial(_collect, handle, batch))
                elif truncated:
                    raise _Truncated("record cut off")
                else:
                    handle(op, rec, batch)
                if truncated:  # only an uncompressed chunk gets here; its tail is gone
                    raise _Truncated("file ends inside this chunk")
            except Exception as exc:  # zstd/lz4/struct/...: whatever it is, this record is lost
                stats.skipped += 1
                what = "truncated" if truncated else "damaged"
                stats._error(f"{path.name}: {what} record (opcode {op:#x}) at byte {start}: {exc}")
            if len(schemas) > defs_sent:  # new types appear before their first message
                defs_sent = len(schemas)
                yield ("defs", [(n, e, t) for n, e, t in schemas.values()])
            batch.sort(key=lambda m: m[0])
            for log_time, cid, data in batch:
                ch = channels.get(cid)
                if ch is None:
                    stats.skipped += 1
                    continue
                topic, sid = ch
                if topics is not None and topic not in topics:
                    continue
                if log_time < last_time:
                    stats.out_of_order += 1
                last_time = max(last_time, log_time)
                yield (topic, schemas.get(sid, ("", "", ""))[0], log_time, data)
            if truncated:
                break
        if not defs_sent:
            yield ("defs", [])


# --------------------------------------------------------------------------- public API


def _raw_stream(layout: _Layout, topics: Collection[str] | None, stats: ReadStats, strict: bool) -> Iterator[Any]:
    """Happy path through rosbags; on any failure, salvage (or raise when ``strict``).
    Messages a target already yielded are skipped after its fallback, so nothing repeats."""
    if layout.metadata is not None:
        targets = [layout.path]  # rosbags reads the directory (split files, compression)
    else:
        targets = list(layout.files)
        if layout.path.is_dir():
            reason = "metadata.yaml unreadable" if layout.has_metadata else "metadata.yaml missing"
            if strict:
                raise BagError(layout.path, f"{reason} (recorder killed?); reindex or read without strict")
            stats._error(f"{reason}; reading the storage files directly")
            stats.salvaged = True

    unreadable: list[str] = []
    got_any = False
    for target in targets:
        last_t, last_keys = -(2**63), set[tuple[str, bytes]]()
        failure: Exception | None = None
        gen = _rosbags_messages(target, topics, stats, count_expected=layout.metadata is None)
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration:
                    break
                except Exception as exc:  # anything rosbags/sqlite/zstd throws means "damaged"
                    failure = exc
                    break
                if item[0] != "defs":
                    got_any = True
                    if item[2] != last_t:
                        last_t, last_keys = item[2], set()
                    last_keys.add((item[0], item[3]))
                yield item
        finally:
            gen.close()  # closes the rosbags reader even when our consumer stops early
        if failure is None:
            continue
        reason = f"{type(failure).__name__}: {failure}"
        if strict:
            raise BagError(target, f"damaged bag: {reason}")
        if layout.compressed:
            raise BagError(target, f"compressed bag is damaged and cannot be salvaged: {reason}")
        stats._error(f"reader failed ({reason}); salvaging record by record")
        stats.salvaged = True
        for fpath in layout.files if target.is_dir() else [target]:
            salvage = _sqlite_salvage if STORAGE_SUFFIXES.get(fpath.suffix) == "sqlite3" else _mcap_salvage
            try:
                for item in salvage(fpath, topics, stats):
                    if item[0] != "defs":
                        if item[2] < last_t or (item[2] == last_t and (item[0], item[3]) in last_keys):
                            continue  # yielded before the happy path failed
                        got_any = True
                    yield item
            except _Unreadable as exc:
                unreadable.append(f"{fpath.name}: {exc}")
                stats._error(unreadable[-1])
    if unreadable and not got_any:
        raise BagError(layout.path, "; ".join(unreadable))


def iter_bag(
    bag_path: str | Path,
    topics: Iterable[str] | None = None,
    *,
    deserialize: bool = True,
    stats: ReadStats | None = None,
    strict: bool = False,
) -> Iterator[BagMessage]:
    """Messages of a bag directory / .db3 / .mcap in log-time order, optionally only ``topics``.

    Damage never raises mid-stream unless ``strict``: readable messages are yielded and the
    rest is logged and counted in ``stats``. Raises :class:`BagError` immediately when the path
    is not a bag (missing, wrong kind of directory/file, empty or garbage storage files), and
    at the end of iteration when no storage file could be opened as a container at all.

    With ``deserialize`` (default) each message is decoded before it is yielded and ones whose
    payload is garbage are skipped and counted (``stats.undecodable``), so ``m.msg`` never
    raises; ``deserialize=False`` yields raw CDR cheaply (republishing, counting) and ``m.msg``
    decodes on first use, raising :class:`BagError` for a bad payload.
    """
    path = Path(bag_path)
    layout = _layout(path)
    st = stats if stats is not None else ReadStats(str(path))
    st.path, st.storage = str(path), layout.storage
    wanted = set(topics) if topics is not None else None
    if layout.metadata is not None and st.expected is None:
        try:
            st.expected = sum(
                int(t["message_count"])
                for t in layout.metadata.get("topics_with_message_count") or []
                if wanted is None or t["topic_metadata"]["name"] in wanted
            )
        except (KeyError, TypeError, ValueError):
            st.expected = None
    return _iter(layout, wanted, st, strict, deserialize)


def _iter(
    layout: _Layout, topics: set[str] | None, stats: ReadStats, strict: bool, deserialize: bool
) -> Iterator[BagMessage]:
    defs: dict[str, _Def] = {}
    store: Typestore | None = None
    stampers: dict[str, Callable[[bytes], int] | None] = {}
    for item in _raw_stream(layout, topics, stats, strict):
        if item[0] == "defs":
            new = {d[0]: d for d in item[1] if d[0] and d[0] not in defs}
            if new or store is None:
                defs.update(new)
                store = _bag_typestore(defs.values())
                stampers.clear()
            continue
        topic, msgtype, log_time, raw = item
        if store is None:
            store = _bag_typestore(())
        if msgtype not in stampers:
            stampers[msgtype] = _header_stamp_reader(store, msgtype)
        stamper = stampers[msgtype]
        stamp = stamper(raw) if stamper is not None else 0
        msg = BagMessage(topic, msgtype, stamp or log_time, log_time, raw, store)
        if deserialize:
            try:
                msg.msg  # noqa: B018 - cached on the instance
            except BagError as exc:
                if strict:
                    raise
                stats.undecodable += 1
                if stats.undecodable <= 3:
                    stats._error(str(exc))
                continue
        stats.messages += 1
        yield msg


def bag_info(bag_path: str | Path) -> BagInfo:
    """Topics, types, counts and time span. Uses the bag's index when intact; for damaged bags
    it scans (without deserialising) and reports what is actually readable."""
    from rosbags.rosbag2 import Reader

    path = Path(bag_path)
    layout = _layout(path)
    if layout.has_metadata or len(layout.files) == 1:
        target = path if layout.has_metadata else layout.files[0]
        try:
            with Reader(target) as reader:
                infos = sorted(reader.topics.items())
                count = reader.message_count
                start = reader.start_time if count else 0
                end = reader.end_time - 1 if count else 0
            topics = {name: ti.msgtype or "" for name, ti in infos}
            return BagInfo(str(path), layout.storage, topics, {n: ti.msgcount for n, ti in infos}, count, start, end)
        except Exception as exc:
            log.info("%s: index unusable (%s); scanning", path, exc)
    stats = ReadStats(str(path))
    counts: dict[str, list[Any]] = {}
    start, end = 2**63 - 1, 0
    for m in iter_bag(path, stats=stats, deserialize=False):
        entry = counts.setdefault(m.topic, [m.msgtype, 0])
        entry[1] += 1
        start, end = min(start, m.log_time_ns), max(end, m.log_time_ns)
    total = sum(c for _, c in counts.values())
    return BagInfo(
        str(path),
        layout.storage,
        {k: t for k, (t, _) in sorted(counts.items())},
        {k: c for k, (_, c) in sorted(counts.items())},
        total,
        start if total else 0,
        end if total else 0,
        complete=stats.complete,
        errors=tuple(stats.errors),
    )


def merge_bags(*streams: Iterable[BagMessage]) -> Iterator[BagMessage]:
    """Interleave several bags' messages by log time (e.g. camera and audio recorded apart)."""
    return heapq.merge(*streams, key=lambda m: m.log_time_ns)

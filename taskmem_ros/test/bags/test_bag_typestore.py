"""Message definitions: our constants match the interface package, custom types in bags work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from taskmem_ros.bags import iter_bag
from taskmem_ros.bags.typestore import (
    AUDIO_CHUNK_MSG,
    AUDIO_CHUNK_MSGTYPE,
    AUDIO_STAMPED_MSGTYPE,
    find_interfaces_dir,
    make_typestore,
    msg_fields,
    read_msg_dir,
    register_msg_dir,
    ros_store,
)

INTERFACES = Path(__file__).resolve().parents[3] / "taskmem_interfaces"


def test_store_is_a_recent_ros2_distro():
    assert ros_store().name in ("ROS2_KILTED", "ROS2_JAZZY", "ROS2_HUMBLE")


def test_audio_chunk_constant_matches_interface_file():
    live = INTERFACES / "msg" / "AudioChunk.msg"
    ours = make_typestore()
    theirs = make_typestore(extra={AUDIO_CHUNK_MSGTYPE: live.read_text()})
    # fields (names, types, order) define the CDR layout and the type hash; comments do not
    assert msg_fields(ours, AUDIO_CHUNK_MSGTYPE) == msg_fields(theirs, AUDIO_CHUNK_MSGTYPE)
    assert ours.hash_rihs01(AUDIO_CHUNK_MSGTYPE) == theirs.hash_rihs01(AUDIO_CHUNK_MSGTYPE)
    assert "uint32 rate" in AUDIO_CHUNK_MSG


def test_live_interface_dir_registers():
    assert find_interfaces_dir() is not None
    texts = read_msg_dir(INTERFACES)
    assert AUDIO_CHUNK_MSGTYPE in texts
    store = make_typestore()  # built-in AudioChunk is identical, so re-registering it is fine
    register_msg_dir(store, INTERFACES / "msg")
    assert set(texts) <= set(store.fielddefs)
    assert set(texts) <= set(make_typestore(msg_dirs=[INTERFACES]).fielddefs)


def test_register_msg_dir(tmp_path):
    pkg = tmp_path / "my_msgs" / "msg"
    pkg.mkdir(parents=True)
    (pkg / "Ping.msg").write_text("# comment\nuint32 seq\nmy_msgs/Pong pong\n")
    (pkg / "Pong.msg").write_text("string text\n")
    store = make_typestore()
    added = register_msg_dir(store, pkg.parent)
    assert added == ["my_msgs/msg/Ping", "my_msgs/msg/Pong"]
    t = store.types
    raw = store.serialize_cdr(t["my_msgs/msg/Ping"](seq=3, pong=t["my_msgs/msg/Pong"](text="hi")), "my_msgs/msg/Ping")
    assert store.deserialize_cdr(raw, "my_msgs/msg/Ping").pong.text == "hi"
    with pytest.raises(FileNotFoundError):
        read_msg_dir(tmp_path / "nothing")


def test_audio_common_round_trip():
    store = make_typestore()
    t = store.types
    msg = t[AUDIO_STAMPED_MSGTYPE](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=5, nanosec=7), frame_id="mic"),
        audio=t["audio_common_msgs/msg/Audio"](
            audio_data=t["audio_common_msgs/msg/AudioData"](
                float32_data=np.zeros(0, np.float32),
                int32_data=np.zeros(0, np.int32),
                int24_data=np.zeros(0, np.int32),
                int16_data=np.arange(-5, 5, dtype=np.int16),
                int8_data=np.zeros(0, np.int8),
                uint8_data=np.zeros(0, np.uint8),
            ),
            info=t["audio_common_msgs/msg/AudioInfo"](format=8, channels=1, rate=16000, chunk=10),
        ),
    )
    back = store.deserialize_cdr(store.serialize_cdr(msg, AUDIO_STAMPED_MSGTYPE), AUDIO_STAMPED_MSGTYPE)
    assert list(back.audio.audio_data.int16_data) == list(range(-5, 5)) and back.audio.info.rate == 16000

    pytest.importorskip("taskmem_ros.streams.audio")
    from taskmem_ros.streams.messages import audio_to_block

    block = audio_to_block(back, 16000)
    assert block.stamp_ns == 5 * 10**9 + 7 and block.rate == 16000
    np.testing.assert_allclose(block.samples, np.arange(-5, 5) / 32768.0, atol=1e-6)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_embedded_definitions_are_used(tmp_path, storage):
    """A bag with a type our store has never heard of is still readable: rosbag2 stores the
    definition (sqlite3 schema >= 4, MCAP schemas) and the reader registers it."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_types_from_msg

    private = make_typestore()
    private.register(get_types_from_msg("string label\nfloat64 score\n", "robot_msgs/msg/Detection"))
    bag = tmp_path / "custom"
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(bag, version=9, storage_plugin=plugin) as w:
        conn = w.add_connection("/det", "robot_msgs/msg/Detection", typestore=private)
        for i in range(3):
            msg = private.types["robot_msgs/msg/Detection"](label=f"cup{i}", score=0.5 + i)
            w.write(conn, 10 + i, private.serialize_cdr(msg, "robot_msgs/msg/Detection"))
    msgs = list(iter_bag(bag))
    assert [m.msg.label for m in msgs] == ["cup0", "cup1", "cup2"]
    assert [m.stamp_ns for m in msgs] == [10, 11, 12]  # no header: log time

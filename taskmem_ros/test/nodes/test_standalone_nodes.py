"""The executables the launch file starts (`memorizer_node`, `task_node`), each its own process,
activated by their `autostart` parameter as they would be without a lifecycle manager."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.ros


def test_executables_autostart_and_serve(tmp_path: Path) -> None:
    from graph_client import GraphClient, node_process, stop_processes

    url = f"sqlite:///{tmp_path / 'm.db'}"
    procs = [node_process(name, "autostart:=true", f"store.url:={url}") for name in ("memorizer_node", "task_node")]
    client = GraphClient("standalone_probe")
    try:
        client.wait_active(["memorizer", "task_server"], procs)
        stats = client.trigger("/memorizer/get_stats")
        assert stats["clips_memorized"] == 0 and stats["frames_rejected"] == 0
        resp = client.query("anything")
        assert resp.success and not resp.entries
        result = client.answer("Where are my keys?")
        assert result.abstained and not result.evidence_ids  # empty memory: abstain, never invent
    finally:
        client.close()
        codes = stop_processes(procs)
    assert codes == [0, 0], codes

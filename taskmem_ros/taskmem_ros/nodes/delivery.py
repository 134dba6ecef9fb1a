"""Hand a trained adapter to the robot: one LoadAdapter call, waited on from a plain thread."""

from __future__ import annotations

import threading
from typing import Any

from taskmem_interfaces.msg import AdapterInfo
from taskmem_interfaces.srv import LoadAdapter


def call_load_adapter(client: Any, info: AdapterInfo, wait_s: float, timeout_s: float) -> tuple[bool, str, Any]:
    """(accepted, the robot's message or why no reply came, its active AdapterInfo or None).

    Never called on an executor thread: waiting here is fine, and the reply arrives through the
    executor that spins the client (a done callback), so nothing deadlocks."""
    service = client.srv_name
    if not client.wait_for_service(timeout_sec=wait_s):
        return False, f"robot service {service} not available", None
    future = client.call_async(LoadAdapter.Request(path=info.path, sha256=info.sha256, adapter_id=info.adapter_id))
    replied = threading.Event()
    future.add_done_callback(lambda _f: replied.set())
    if not replied.wait(timeout_s):
        future.cancel()
        return False, f"no reply from {service} within {timeout_s}s", None
    if future.exception() is not None or future.result() is None:
        return False, f"LoadAdapter failed: {future.exception() or 'cancelled'}", None
    resp = future.result()
    return bool(resp.success), resp.message, resp.active

"""Print the lock lines for the active environment: every distribution pip installed, as
``name==version``, sorted. Left out: torch (installed first, from its own CPU wheel), our own
editable package, and the ``*.egg-info`` metadata that the ROS 2 wheels carry inside them for
their bundled Python packages (rclpy, std_msgs, ...): those are not distributions on any index
and come with the ``ros-*`` wheel that holds them."""

from __future__ import annotations

import importlib.metadata as md
import json

SKIP = {"torch", "taskmem-ros", "taskmem_ros"}


def main() -> None:
    lines = set()
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if (dist.read_text("INSTALLER") or "").strip() != "pip" or name.lower().replace("_", "-") in SKIP:
            continue
        direct = dist.read_text("direct_url.json")
        if direct and json.loads(direct).get("dir_info", {}).get("editable"):
            continue
        lines.add(f"{name}=={dist.version}")
    print("\n".join(sorted(lines, key=str.lower)))


if __name__ == "__main__":
    main()

"""The one way our launch files bring a lifecycle node to active.

launch_ros (Jazzy, Kilted) drives configure -> activate itself with ``LifecycleNode(autostart=True)``;
older launch_ros has no such argument, so launch acts as the lifecycle manager: it emits configure
and activates on the 'inactive' transition. ``taskmem-bringup`` (no launch_ros) and the nodes'
``autostart`` parameter use the same two transitions through ``nodes.lifecycle.bring_to_active``.
launch and launch_ros are imported here only, when a launch file calls this.
"""

from __future__ import annotations

import inspect
from typing import Any


def has_autostart() -> bool:
    """Whether this launch_ros can autostart lifecycle nodes (feature test, not a distro name)."""
    from launch_ros.actions import LifecycleNode

    return "autostart" in inspect.signature(LifecycleNode.__init__).parameters


def lifecycle_node(**node_kwargs: Any) -> list[Any]:
    """A managed ``LifecycleNode`` and whatever brings it to active, as launch entities."""
    from launch_ros.actions import LifecycleNode

    if has_autostart():
        return [LifecycleNode(autostart=True, **node_kwargs)]
    node = LifecycleNode(**node_kwargs)
    return [node, *_to_active_events(node)]


def _to_active_events(node: Any) -> list[Any]:
    """Emit configure now, and activate once the node reports 'inactive'."""
    import launch.actions
    import launch.events
    import lifecycle_msgs.msg
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState

    def change(transition: int) -> Any:
        matcher = launch.events.matches_action(node)
        return launch.actions.EmitEvent(event=ChangeState(lifecycle_node_matcher=matcher, transition_id=transition))

    activate_when_inactive = launch.actions.RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            goal_state="inactive",
            entities=[change(lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE)],
        )
    )
    return [activate_when_inactive, change(lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE)]

"""The owner's warning that a task or actor cannot be scheduled right now.

The global scheduler tells a task's owner (``TaskInfeasible``) when no alive node has the
resources the task asks for; the task keeps waiting for such a node, as in Ray, and the
owner says so on stderr, as Ray's "cannot be scheduled right now" warning does: once per
resource shape every ``REPEAT_SECONDS``, so a thousand such tasks make one line.
"""

from __future__ import annotations

import logging
import time

from babyray import log
from babyray.protocol import tasks as tm

__all__ = ["InfeasibleWarnings"]

REPEAT_SECONDS = 30.0


class InfeasibleWarnings:
    def __init__(self) -> None:
        self._last: dict[tuple, float] = {}  # resource shape -> when it was last warned about
        self.log = log.get_logger("core")

    def warn(self, msg: tm.TaskInfeasible) -> None:
        self.log.warning(
            "task_infeasible", task_id=msg.task_id, function=msg.function_name, resources=msg.resources
        )
        shape = tuple(sorted(msg.resources.items()))
        now = time.monotonic()
        if now - self._last.get(shape, -REPEAT_SECONDS) < REPEAT_SECONDS:
            return
        self._last[shape] = now
        what = "actor" if msg.actor_creation else "task"
        name = msg.function_name.removesuffix(".__init__") if msg.actor_creation else msg.function_name
        nodes = ", ".join(_shown(total) for total in msg.node_resources) or "none"
        log.tell_user(
            f"Warning: the {what} {name} ({msg.task_id}) cannot be scheduled right "
            f"now: it requires {_shown(msg.resources)}, which no alive node has (alive nodes: "
            f"{nodes}). It waits until a node with these resources joins the cluster; "
            f"{'ray.kill()' if msg.actor_creation else 'ray.cancel()'} gives up on it.",
            logging.WARNING,
        )


def _shown(resources: dict) -> str:
    return "{" + ", ".join(f"{name}: {amount:g}" for name, amount in sorted(resources.items())) + "}"

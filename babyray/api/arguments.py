"""Resolving a task's top-level ObjectRef arguments, shared by task and actor-call submission."""
from __future__ import annotations

from typing import Any, Callable

from babyray.actors import messages as m


def arg_resolver(task: Any, container: Any, slot: Any, oid: str, when_ready: Callable[[], None]) -> Callable:
    """Callback for one ObjectRef argument of ``task`` (anything with ``unresolved`` and
    ``failed``): put its value in ``container[slot]``; ``when_ready()`` after the last one."""
    def resolved(value: Any) -> None:
        if isinstance(value, m.ErrorValue):
            task.failed = task.failed or value
        container[slot] = m.ValueArg(oid, value)
        task.unresolved -= 1
        if task.unresolved == 0:
            when_ready()
    return resolved

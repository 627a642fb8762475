"""Resolving a task's top-level ObjectRef arguments, shared by task and actor-call submission."""
from __future__ import annotations

from typing import Any, Callable

from babyray import serialization
from babyray.exceptions import RayTaskError
from babyray.protocol import values as vm


def arg_resolver(task: Any, container: Any, slot: Any, oid: str, when_ready: Callable[[], None]) -> Callable:
    """Callback for one ObjectRef argument of ``task`` (anything with ``spec``, ``unresolved``
    and ``failed``): put its value in ``container[slot]``; ``when_ready()`` after the last one.
    The first argument that is an error becomes the task's error (``failed``)."""
    def resolved(value: Any) -> None:
        if isinstance(value, vm.ErrorValue):
            task.failed = task.failed or _input_failed(task.spec, value)
        container[slot] = vm.ValueArg(oid, value)
        task.unresolved -= 1
        if task.unresolved == 0:
            when_ready()
    return resolved


def _input_failed(spec: vm.TaskSpec, value: vm.ErrorValue) -> vm.ErrorValue:
    """The error of ``spec``, not run because an argument is the error ``value``."""
    try:
        error = serialization.deserialize(value.blob)
    except Exception:  # an error this process cannot rebuild: pass it on as it is
        return value
    return vm.ErrorValue(serialization.dumps(RayTaskError.from_failed_input(spec.function_name, error, spec.task_id)))

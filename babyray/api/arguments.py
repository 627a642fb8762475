"""A task's top-level ObjectRef arguments: resolved by the owner before it submits the task
(shared by task and actor-call submission), and turned into values by the worker that runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from babyray import serialization
from babyray.exceptions import RayTaskError
from babyray.ids import ObjectID
from babyray.protocol import objects as om
from babyray.protocol import values as vm

if TYPE_CHECKING:
    from babyray.api.core import CoreClient


def arg_resolver(
    task: Any, container: Any, slot: Any, oid: ObjectID, when_ready: Callable[[], None]
) -> Callable:
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
    return vm.ErrorValue(
        serialization.dumps(RayTaskError.from_failed_input(spec.function_name, error, spec.task_id))
    )


def argument_values(core: CoreClient, args: list) -> list[Any]:
    """The values of task arguments as a worker receives them: ``InlineValue`` for plain values,
    ``ValueArg`` for resolved refs.

    The refs whose values are in this node's store are pinned with one request, not one each
    (a task with thousands of ref arguments would wait for thousands of round trips); any
    other value, or all of them if that request fails, goes through ``core.materialize``.

    Raises:
        RayError: an argument is an error, or its object is lost.
    """
    local = _stored_here(core, args)
    read: dict[int, Any] = {}
    if len(local) > 1:
        oids = tuple(oid for _, oid in local)
        reply = core.io.pin_here(oids)
        if reply.error is None:
            read = _read_pinned(core, reply, local)
    values: list[Any] = []
    try:
        for i, arg in enumerate(args):
            if i in read:
                values.append(read.pop(i))
            elif isinstance(arg, vm.ValueArg) and arg.object_id is not None:
                values.append(core.materialize(arg.object_id, arg.value))
            else:
                values.append(serialization.deserialize(arg.blob))
    except BaseException:
        _drop(values, read)
        raise
    return values


def _stored_here(core: CoreClient, args: list) -> list[tuple[int, ObjectID]]:
    """(position, object id) of the arguments whose values are in this node's store."""
    if core.remote_store_io:
        return []
    return [
        (i, arg.object_id)
        for i, arg in enumerate(args)
        if isinstance(arg, vm.ValueArg)
        and arg.object_id is not None
        and isinstance(arg.value, vm.StoredValue)
        and arg.value.node_id == core.node_id
    ]


def _read_pinned(
    core: CoreClient, reply: om.ObjectsPinned, pinned: list[tuple[int, ObjectID]]
) -> dict[int, Any]:
    """Read every argument pinned by ``reply`` (one pin per occurrence), by position.

    Raises:
        Exception: the error of a value that cannot be rebuilt here; the pins of those not
        read yet are released first.
    """
    read: dict[int, Any] = {}
    for n, (i, oid) in enumerate(pinned):
        try:
            read[i] = core.io.read_pinned(oid, reply.arena_name, *reply.slots[oid])
        except BaseException:
            _drop(read)
            unread = tuple(o for _, o in pinned[n + 1 :])
            if unread:
                core.transport.send(core.store, om.UnpinObjects(unread, core.identity))
            raise
    return read


def _drop(*containers: list | dict) -> None:
    """Empty the containers of values read so far, so their pins go now: the error raised
    next keeps its frames' locals alive until a garbage collection."""
    for container in containers:
        container.clear()

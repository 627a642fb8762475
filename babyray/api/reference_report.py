"""Which ObjectRefs one process holds and why: its rows of ``babyray memory``.

Every driver and worker answers GetReferences with ``snapshot(core)``: one dict per object
the process holds a reference to, typed as Ray's ``ray memory`` does, by the first of these
that applies:

- PINNED_IN_MEMORY: a value read zero-copy from the store (e.g. a numpy array) is alive
  in this process, so the store keeps the object's memory pinned;
- USED_BY_PENDING_TASK: an argument (top-level, or a ref nested in one) of a task this
  process submitted whose result has not arrived;
- LOCAL_REFERENCE: an ObjectRef instance held by this process's code;
- CAPTURED_IN_OBJECT: serialized inside another object whose value this process holds;
- BORROWED: owned by this process and held only by other processes, its borrowers.

Pending tasks and value records hold copies of their refs (``reference_counting``), so the
instances user code holds are the process's instances minus those copies.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from babyray.ids import ObjectID, TaskID
from babyray.protocol import values as vm

if TYPE_CHECKING:
    from babyray.api.core import CoreClient

__all__ = ["REFERENCE_TYPES", "snapshot"]

PINNED_IN_MEMORY = "PINNED_IN_MEMORY"
USED_BY_PENDING_TASK = "USED_BY_PENDING_TASK"
LOCAL_REFERENCE = "LOCAL_REFERENCE"
CAPTURED_IN_OBJECT = "CAPTURED_IN_OBJECT"
BORROWED = "BORROWED"
REFERENCE_TYPES = (PINNED_IN_MEMORY, USED_BY_PENDING_TASK, LOCAL_REFERENCE, CAPTURED_IN_OBJECT, BORROWED)


def snapshot(core: "CoreClient") -> tuple[dict, ...]:
    """One dict per object ``core``'s process holds a reference to.

    Keys: ``object_id``, ``reference_type``, ``local_refs`` (instances held by user code),
    ``pinned_views``, ``pending_tasks`` ({task id: function name}), ``captured_in`` (outer
    object ids), ``owned``, ``borrowers`` (if owned), and the value's ``size_bytes`` and
    ``stored_on`` (its node; None if inline) when this process knows them.
    """
    refs = core.refs
    refs.drain()  # deaths and released views queued so far
    with core.lock:
        copies: dict[ObjectID, int] = defaultdict(int)
        pending: dict[ObjectID, dict[TaskID, str]] = defaultdict(dict)
        for task_id, held in refs.task_holds.items():
            for ref in held:
                copies[ref.id] += 1
                pending[ref.id][task_id] = _task_name(core, task_id)
        captured: dict[str, set[str]] = defaultdict(set)
        for outer, value in core.objects.known_values():
            for ref in getattr(value, "refs", ()):
                copies[ref.id] += 1
                captured[ref.id].add(outer)
        held_elsewhere = {oid for oid in core.objects.owned_ids() if refs.borrowers.get(oid)}
        rows = []
        for oid in set(refs.local) | set(refs.views) | held_elsewhere:
            local = max(0, refs.local.get(oid, 0) - copies[oid])
            views = refs.views.get(oid, 0)
            row = {
                "object_id": oid,
                "reference_type": _type(views, pending[oid], local, captured[oid]),
                "local_refs": local,
                "pinned_views": views,
                "pending_tasks": pending[oid],
                "captured_in": sorted(captured[oid]),
                "owned": core.objects.owned(oid) is not None,
                "borrowers": sorted(refs.borrowers.get(oid, ())),
                **_value_fields(core, oid),
            }
            rows.append(row)
    return tuple(rows)


def _type(views: int, pending: dict, local: int, captured: set) -> str:
    if views:
        return PINNED_IN_MEMORY
    if pending:
        return USED_BY_PENDING_TASK
    if local:
        return LOCAL_REFERENCE
    if captured:
        return CAPTURED_IN_OBJECT
    return BORROWED


def _value_fields(core: "CoreClient", oid: ObjectID) -> dict:
    """Size and store node of ``oid``'s value if this process knows it. Locked."""
    value = core.objects.value_of(oid)
    if isinstance(value, vm.StoredValue):
        return {"size_bytes": value.size, "stored_on": value.node_id}
    if isinstance(value, (vm.InlineValue, vm.ErrorValue)):
        return {"size_bytes": len(value.blob), "stored_on": None}
    return {"size_bytes": None, "stored_on": None}


def _task_name(core: "CoreClient", task_id: TaskID) -> str:
    """The function of a task this process submitted and waits for ("" if not found). Locked."""
    spec = core.tasks.spec_of(task_id) or core.actor_calls.spec_of(task_id)
    return spec.function_name if spec is not None else ""

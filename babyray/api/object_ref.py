"""ObjectRef: a handle to an object that a task returns or ``put`` stores.

A ref names the object and its owner (the driver or worker that created it, which knows
where the value is). It pickles into task arguments and containers; the serializer is told
about every ref it meets so nested refs can be tracked.

Every instance is counted by the process's reference counter
(``babyray.api.reference_counting``): creating one (directly or by unpickling) counts up
at once, and its death is queued for the counter, so the owner frees the object when the
last instance anywhere is gone.

A ref is also awaitable (``await ref`` in any event loop) and ``ref.future()`` gives a
``concurrent.futures.Future`` of its value (see ``babyray.api.ref_futures``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Generator

from babyray.api import reference_counting
from babyray.ids import ObjectID, WorkerID
from babyray.serialization import _ref_hooks, note_ref_serialized

_queue_death = reference_counting.deleted_events.append
_ended_owners: set[WorkerID] = set()  # this process's drivers that shut down: their refs are dead


def owner_ended(owner_id: WorkerID) -> None:
    """This process's driver ``owner_id`` shut down: the refs it made are lost for good."""
    _ended_owners.add(owner_id)


def made_by_ended_owner(ref: ObjectRef) -> bool:
    """Whether ``ref`` was made by a driver of this process that has shut down (a ref kept
    across ``shutdown()`` and ``init()``)."""
    return ref.owner_id in _ended_owners


def ended_session_message(ref: ObjectRef) -> str:
    return (
        f"{ref!r} was made before this process's babyray.shutdown(): its owner, the driver of that "
        "earlier session, has ended, and its value with it"
    )


class ObjectRef:
    __slots__ = ("id", "owner", "owner_id", "_counted", "__weakref__")

    def __init__(self, object_id: ObjectID, owner: Any, owner_id: WorkerID) -> None:
        self._counted = 0
        self.id = object_id
        self.owner = owner
        self.owner_id = owner_id
        self._counted = reference_counting.ref_created(self)

    def __del__(self) -> None:
        # Any thread, maybe inside the garbage collector: only queue the death (lock-free).
        if self._counted:
            _queue_death((self._counted, self.id))

    def hex(self) -> str:
        return self.id

    def binary(self) -> bytes:
        return bytes.fromhex(self.id)

    def task_id(self) -> str:
        return self.id[:-4]

    def future(self) -> concurrent.futures.Future:
        """A ``concurrent.futures.Future`` completed with the value (or the task's error)."""
        from babyray.api import context, ref_futures

        return ref_futures.future_of(context.runtime().core, self)

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self.future()).__await__()

    def __reduce__(self) -> Any:
        if getattr(_ref_hooks, "refs", None) is not None:  # inside serialization.serialize
            if self.owner_id in _ended_owners:
                raise ValueError(ended_session_message(self) + "; it cannot be passed on")
            note_ref_serialized(self)
            reference_counting.ref_serialized(self)
        return (ObjectRef, (self.id, self.owner, self.owner_id))

    def __copy__(self) -> "ObjectRef":
        return ObjectRef(self.id, self.owner, self.owner_id)

    def __deepcopy__(self, memo: dict) -> "ObjectRef":
        return ObjectRef(self.id, self.owner, self.owner_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"ObjectRef({self.id})"

"""The values one process knows: the objects it owns and the ones it borrows, and who waits for them.

An owned object (a task's return, a ``put``, a generator's item) is pending until its value
record (InlineValue, StoredValue or ErrorValue) is known; callbacks registered meanwhile run
once, when it is set. A borrowed object's record is asked of its owner the first time a
lookup needs it (``ask_owner``) and kept until the last ref to it dies.

No I/O: the table only calls back. Every method runs under ``lock`` (the owner's one lock,
held by the caller) except ``collect``, which takes it and waits on ``changed``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from babyray import exceptions, serialization
from babyray.api.object_ref import ObjectRef, ended_session_message, made_by_ended_owner
from babyray.ids import ObjectID, TaskID, WorkerID
from babyray.protocol import values as vm

Value = Any  # vm.InlineValue | vm.StoredValue | vm.ErrorValue, or their variants carrying refs
Callback = Callable[[Value], None]


@dataclass(slots=True)
class OwnedObject:
    """An object this process owns: its value once known, and what to call then."""

    value: Value | None = None
    callbacks: list = field(default_factory=list)
    task_id: TaskID | None = None  # the task making it (None: made by put)


class OwnerTable:
    """Owned and borrowed value records of one process, by object id."""

    def __init__(
        self, identity: WorkerID, lock: threading.RLock, ask_owner: Callable[[ObjectRef], None]
    ) -> None:
        self.identity = identity
        self.lock = lock
        self.changed = threading.Condition(lock)  # notified whenever a value becomes known
        self._ask_owner = ask_owner
        self._owned: dict[ObjectID, OwnedObject] = {}
        self._borrowed: dict[ObjectID, Value] = {}
        self._borrow_callbacks: dict[ObjectID, list[Callback]] = {}
        self._asked_owners: dict[ObjectID, WorkerID] = {}  # borrowed objects asked of, unanswered
        # Called around waits in ``collect`` from a task's thread (a worker releases its CPU).
        self.on_block: Callable[[], None] | None = None
        self.on_unblock: Callable[[], None] | None = None
        # Whether the waiting task was cancelled (babyray.api.task_interrupts): stop waiting.
        self.interrupted: Callable[[], bool] = lambda: False

    # ---- owned objects ---------------------------------------------------------------

    def own_pending(self, oid: ObjectID, task_id: TaskID) -> None:
        """Own ``oid``, to be made by ``task_id``; its value is not known yet."""
        self._owned[oid] = OwnedObject(task_id=task_id)

    def own_value(self, oid: ObjectID, task_id: TaskID | None, value: Value) -> None:
        """Own ``oid`` whose value is known (a put's, or a generator's item)."""
        self._owned[oid] = OwnedObject(task_id=task_id)
        self.set_value(oid, value)

    def make_pending(self, oid: ObjectID, task_id: TaskID) -> None:
        """``oid``'s task runs again: its value is unknown again (an entry freed meanwhile comes back)."""
        entry = self._owned.get(oid)
        if entry is None:
            self._owned[oid] = OwnedObject(task_id=task_id)
        else:
            entry.value = None

    def set_value(self, oid: ObjectID, value: Value) -> None:
        """The value of owned ``oid`` is known (a first value only: a later one is ignored)."""
        entry = self._owned.get(oid)
        if entry is None:
            entry = self._owned[oid] = OwnedObject()
        if entry.value is not None:
            return
        entry.value = value
        callbacks, entry.callbacks = entry.callbacks, []
        for callback in callbacks:
            callback(value)
        self.changed.notify_all()

    def owned(self, oid: ObjectID) -> OwnedObject | None:
        """The entry of owned ``oid`` (None: not owned, or freed)."""
        return self._owned.get(oid)

    def owned_ids(self) -> list[ObjectID]:
        return list(self._owned)

    def drop(self, oid: ObjectID) -> None:
        """Forget owned ``oid`` (freed): later lookups find it lost."""
        del self._owned[oid]

    def when_known(self, oid: ObjectID, callback: Callback) -> None:
        """Call ``callback(value)`` once owned ``oid``'s value is set (now if it is)."""
        entry = self._owned[oid]
        if entry.value is not None:
            callback(entry.value)
        else:
            entry.callbacks.append(callback)

    def answer(self, oid: ObjectID, reply: Callback) -> None:
        """Give ``oid``'s value to a borrower (``reply``), now or once known; an error if it is unknown."""
        if oid in self._owned:
            self.when_known(oid, reply)
        else:
            reply(_lost(f"object {oid} is not known to its owner {self.identity}"))

    # ---- borrowed objects ------------------------------------------------------------

    def borrowed_arrived(self, values: tuple) -> None:
        """The owners sent these ``(object id, value)``: keep them and wake their waiters."""
        for oid, value in values:
            self._borrowed[oid] = value
            self._asked_owners.pop(oid, None)
            for callback in self._borrow_callbacks.pop(oid, []):
                callback(value)
        self.changed.notify_all()

    def forget_borrowed(self, oid: ObjectID) -> None:
        """The last ref to borrowed ``oid`` in this process died."""
        self._borrowed.pop(oid, None)

    # ---- lookups ---------------------------------------------------------------------

    def value_of(self, oid: ObjectID) -> Value | None:
        """``oid``'s value if this process knows it (owned or borrowed)."""
        entry = self._owned.get(oid)
        return entry.value if entry is not None else self._borrowed.get(oid)

    def known_values(self) -> list[tuple[ObjectID, Value]]:
        """(object id, value) of every value this process holds, owned and borrowed."""
        owned = [(oid, entry.value) for oid, entry in self._owned.items() if entry.value is not None]
        return owned + list(self._borrowed.items())

    def lookup(self, ref: ObjectRef, callback: Callback) -> None:
        """Call ``callback(value)`` once ``ref``'s value is known (maybe right now)."""
        entry = self._owned.get(ref.id)
        if entry is not None:
            if entry.value is not None:
                callback(entry.value)
            else:
                entry.callbacks.append(callback)
            return
        value = self._borrowed.get(ref.id)
        if value is not None:
            callback(value)
            return
        if ref.owner_id == self.identity:
            callback(_lost(f"object {ref.id} is no longer known to its owner"))
            return
        if made_by_ended_owner(ref):
            callback(_error(exceptions.OwnerDiedError(ended_session_message(ref))))
            return
        waiting = self._borrow_callbacks.setdefault(ref.id, [])
        waiting.append(callback)
        if len(waiting) == 1:
            self._asked_owners[ref.id] = ref.owner_id
            self._ask_owner(ref)

    def asked_owners(self) -> set[WorkerID]:
        """The owners asked for a borrowed value that has not come yet."""
        return set(self._asked_owners.values())

    def owners_dead(self, worker_ids: tuple[WorkerID, ...]) -> None:
        """These workers died: what they were asked for will never come, so it fails with
        OwnerDiedError (as in Ray) instead of being waited for."""
        dead = set(worker_ids)
        lost = tuple(
            (oid, _owner_died(oid, owner)) for oid, owner in self._asked_owners.items() if owner in dead
        )
        if lost:
            self.borrowed_arrived(lost)

    def collect(
        self,
        refs: list[ObjectRef],
        want: int,
        timeout: float | None,
        others_ready: Callable[[], int] | None = None,
    ) -> dict[ObjectID, Value]:
        """Wait until ``want`` of ``refs`` have values (or timeout); return those known. Takes the lock.

        ``others_ready()`` (called locked) counts more things ready, e.g. generators for ``wait``.
        """
        found: dict[ObjectID, Value] = {}

        def keep(oid: ObjectID) -> Callback:
            def store(value: Value) -> None:
                found[oid] = value

            return store

        deadline = None if timeout is None else time.monotonic() + timeout
        blocked = False
        try:
            with self.lock:
                for ref in refs:
                    if ref.id not in found:
                        self.lookup(ref, keep(ref.id))
                while len(found) + (others_ready() if others_ready else 0) < want:
                    if self.interrupted():
                        raise KeyboardInterrupt
                    if not blocked and self.on_block is not None:
                        blocked = True
                        self.on_block()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self.changed.wait(remaining)
        finally:
            if blocked and self.on_unblock is not None:
                self.on_unblock()
        return found


def _lost(message: str) -> vm.ErrorValue:
    return _error(exceptions.ObjectLostError(message))


def _error(error: Exception) -> vm.ErrorValue:
    return vm.ErrorValue(serialization.dumps(error))


def _owner_died(oid: ObjectID, owner: WorkerID) -> vm.ErrorValue:
    return _error(
        exceptions.OwnerDiedError(
            f"Failed to retrieve object {oid}: its owner, worker {owner} (the process that made "
            f"it by .remote() or put), has died; see that worker's node log for why."
        )
    )

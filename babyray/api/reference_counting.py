"""Distributed reference counting: an object is freed once no ObjectRef to it remains anywhere.

As in Ray, the owner of an object (the process that submitted the task making it, or that
``put`` it) decides when it dies. It counts

- the ObjectRef instances alive in its own process, including those it holds on behalf of
  pending tasks (their top-level and nested ref arguments, held until the task's result
  arrives) and those inside the value records of its objects (refs contained in a stored
  value keep their objects alive while the outer object lives);
- the borrowers: other processes where an instance of the ref lives. A process that
  creates its first instance of a ref it does not own (by unpickling it) sends
  ``AddBorrowers`` to the owner at once, from the same thread and through the same
  ordered outbox as what it sends next (e.g. the task's result), so the registration
  reaches an owner before the owner can drop the refs it held for that task. When its last
  instance dies it sends ``RemoveBorrowers``. A borrower that dies never does: every 2 s an
owner with borrowers asks the GCS which of them died (local schedulers report every worker
death there) and drops those.

When both reach zero the owner drops the object's entry and sends ``FreeObjects`` to the
store holding it (batched per store); the store defers the free while readers pin it.

Pending tasks and value records hold copies of the refs they keep alive (instances of
their own), so ``babyray memory`` can tell the refs user code holds from those: see
``babyray.api.reference_report``. The counter also counts the values read zero-copy from
the store that are still alive (``views``: they pin the object in the store), and tells the
process's ObjectIO when an object's last ref or last value dies (it may hold a pin of it).

Threads: ``ObjectRef.__init__`` calls ``ReferenceCounter.created`` (takes the core lock;
never called from a finalizer). ``ObjectRef.__del__`` may run in any thread, inside the
garbage collector, even while that thread holds the core lock: it only appends to a deque
(so does the release of a zero-copy value). A daemon thread per counter drains the deques
every ``DRAIN_INTERVAL`` seconds (and every core operation that wants fresh counts calls
``drain``).

Known gap: when a process hands a ref it *borrows* to a task, the task's worker registers
with the owner in a separate message from the handing process's own ``RemoveBorrowers``;
if the handing process drops its ref while the task runs, the two can race.
"""

from __future__ import annotations

import collections
import copy
import itertools
import os
import threading
from typing import TYPE_CHECKING, Any, Callable

from babyray import log
from babyray.ids import ObjectID, TaskID, WorkerID
from babyray.protocol import objects as om
from babyray.protocol import values as vm

if TYPE_CHECKING:
    from babyray.api.core import CoreClient
    from babyray.api.object_ref import ObjectRef
    from babyray.serialization import SerializedObject

__all__ = [
    "ReferenceCounter",
    "deleted_events",
    "forget_serialized_refs",
    "ref_created",
    "take_serialized_refs",
    "value_record",
]

DRAIN_INTERVAL = 0.02
HELD_PINS_ROUNDS = 10  # the counting thread releases idle held pins every this many rounds
# and asks the GCS which borrowers (and owners of values awaited) died every this many (2 s)
DEAD_WORKER_CHECK_ROUNDS = 100

# (generation, object id) of every dead tracked ObjectRef, appended by ObjectRef.__del__.
deleted_events: collections.deque = collections.deque()
_generations = itertools.count(1)
_current: "ReferenceCounter | None" = None
_serialized = threading.local()  # refs pickled by serialize() in this thread, not yet claimed


def ref_created(ref: "ObjectRef") -> int:
    """Count a new ObjectRef instance; returns the counter's generation (0: not counted)."""
    counter = _current
    if counter is None or counter.pid != os.getpid():
        return 0
    return counter.created(ref)


def ref_serialized(ref: "ObjectRef") -> None:
    """Remember a ref pickled by ``serialization.serialize`` in this thread (see ``take_serialized_refs``)."""
    pending = getattr(_serialized, "refs", None)
    if pending is None:
        pending = _serialized.refs = []
    pending.append(ref)


def take_serialized_refs() -> list:
    """The refs pickled by ``serialize`` in this thread since the last call (and forget them).

    ``encode_arg`` drops the contained refs of small arguments; ``submit`` claims them here
    so the task holds them until its result arrives.
    """
    pending = getattr(_serialized, "refs", None)
    if not pending:
        return []
    _serialized.refs = []
    return pending


def forget_serialized_refs(refs: list) -> None:
    """Drop ``refs`` from this thread's unclaimed list (their value record holds them instead)."""
    pending = getattr(_serialized, "refs", None)
    if pending:
        drop = {id(r) for r in refs}
        pending[:] = [r for r in pending if id(r) not in drop]


def value_record(value: Any, refs: list) -> Any:
    """``value`` (InlineValue or StoredValue) carrying copies of ``refs`` if the value contains any."""
    if not refs:
        return value
    held = tuple(copy.copy(r) for r in refs)
    if isinstance(value, vm.InlineValue):
        return vm.InlineValueRefs(value.blob, held)
    return vm.StoredValueRefs(value.node_id, value.size, value.store, held)


class ReferenceCounter:
    """The reference counts of one process (driver or worker); made by its CoreClient.

    Becomes the process's current counter (the one ObjectRef instances report to); a
    counter made earlier in the process (a previous ``init``) stops counting.
    """

    def __init__(self, core: "CoreClient") -> None:
        global _current
        self.core = core
        self.lock = core.lock
        self.pid = os.getpid()
        self.generation = next(_generations)
        self.local: dict[ObjectID, int] = {}  # object id -> live instances in this process
        self.borrowers: dict[ObjectID, set] = {}  # owned object id -> borrower ids
        self.owners: dict[str, Any] = {}  # borrowed object id -> owner address
        self.task_holds: dict[TaskID, list] = {}  # task id -> copies of the refs its arguments need
        self.views: dict[ObjectID, int] = {}  # object id -> live values mapping it from the store
        self._closed_views: collections.deque = collections.deque()  # object ids, appended lock-free
        self.freed = 0
        self.freed_bytes = 0
        self.log = log.get_logger("reference_counting")
        self._stop = threading.Event()
        _current = self
        self._thread = threading.Thread(target=self._drain_loop, name="babyray-refcount", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"ReferenceCounter({self.core.identity}, refs={len(self.local)}, borrowed={len(self.owners)})"

    def close(self) -> None:
        """Stop counting; the counting thread ends."""
        global _current
        self._stop.set()
        if _current is self:
            _current = None
        if self._thread is not threading.current_thread():
            self._thread.join()

    # ---- instances -------------------------------------------------------------------

    def created(self, ref: "ObjectRef") -> int:
        core = self.core
        with self.lock:
            n = self.local.get(ref.id, 0)
            self.local[ref.id] = n + 1
            if n == 0 and ref.owner_id != core.identity and ref.owner is not None:
                self.owners[ref.id] = ref.owner
                core.transport.send(ref.owner, om.AddBorrowers(core.identity, (ref.id,)))
        return self.generation

    def _drain_loop(self) -> None:
        rounds = 0
        while not self._stop.wait(DRAIN_INTERVAL):
            if _current is not self:
                return  # a later init() made a new counter
            rounds += 1
            try:
                if deleted_events or self._closed_views:
                    self.drain()
                if rounds % HELD_PINS_ROUNDS == 0 and self.core.io.held:
                    with self.lock:
                        self.core.io.release_idle()
                if rounds % DEAD_WORKER_CHECK_ROUNDS == 0 and (
                    self.borrowers or self.core.objects.asked_owners()
                ):
                    self._ask_for_dead_workers()
                if self.core.io.unpins_due:
                    with self.lock:
                        self.core.io.flush_unpins()
            except Exception:  # never let the counting thread die
                self.log.exception("refcount_drain_failed")

    def drain(self) -> None:
        """Apply the deaths of ObjectRef instances queued so far; free what nobody holds."""
        if _current is not self or self.pid != os.getpid():
            return
        frees: dict[int, tuple[Any, list]] = {}
        with self.lock:
            self._apply_closed_views()
            while True:
                try:
                    generation, oid = deleted_events.popleft()
                except IndexError:
                    break
                if generation != self.generation:
                    continue  # an instance counted by an earlier session
                n = self.local.get(oid, 0) - 1
                if n > 0:
                    self.local[oid] = n
                    continue
                self.local.pop(oid, None)
                self.core.io.ref_gone(oid)
                owner = self.owners.pop(oid, None)
                if owner is not None:  # borrowed: tell the owner, forget the cached value
                    self.core.objects.forget_borrowed(oid)
                    self.core.transport.send(owner, om.RemoveBorrowers(self.core.identity, (oid,)))
                else:
                    self._maybe_free(oid, frees)
        self._send_frees(frees)

    # ---- values mapped from the store ------------------------------------------------

    def view_opened(self, oid: ObjectID) -> Callable[[], None]:
        """Count a value of ``oid`` read zero-copy from the store; returns the hook to call
        when it is released (from any thread, inside the garbage collector too)."""
        with self.lock:
            self.views[oid] = self.views.get(oid, 0) + 1
        return lambda: self._closed_views.append(oid)

    def _apply_closed_views(self) -> None:
        """Count down the views released since the last call. Locked."""
        while self._closed_views:
            oid = self._closed_views.popleft()
            n = self.views.get(oid, 0) - 1
            if n > 0:
                self.views[oid] = n
            else:
                self.views.pop(oid, None)
                self.core.io.views_gone(oid)

    # ---- owner side ------------------------------------------------------------------

    def handle(self, msg: Any) -> None:
        """AddBorrowers / RemoveBorrowers from other processes (owner side)."""
        frees: dict[int, tuple[Any, list]] = {}
        with self.lock:
            if type(msg) is om.AddBorrowers:
                for oid in msg.object_ids:
                    if self.core.objects.owned(oid) is not None and msg.borrower_id != self.core.identity:
                        self.borrowers.setdefault(oid, set()).add(msg.borrower_id)
            else:
                for oid in msg.object_ids:
                    holders = self.borrowers.get(oid)
                    if holders is not None:
                        holders.discard(msg.borrower_id)
                        if not holders:
                            del self.borrowers[oid]
                            self._maybe_free(oid, frees)
        self._send_frees(frees)

    def _ask_for_dead_workers(self) -> None:
        """Ask the GCS which of this owner's borrowers died (``borrowers_dead`` gets the answer),
        and which of the owners asked for a borrowed value (``OwnerTable.owners_dead``)."""
        core = self.core
        with self.lock:
            workers = {
                b for holders in self.borrowers.values() for b in holders
            } | core.objects.asked_owners()
        core.transport.send(
            core.gcs, om.FindDeadWorkers(core.requests.new_req_id(), tuple(workers), core.inbox)
        )

    def borrowers_dead(self, worker_ids: tuple[WorkerID, ...]) -> None:
        """These borrowers died: they hold no refs any more (they never sent RemoveBorrowers)."""
        if not worker_ids:
            return
        dead = set(worker_ids)
        frees: dict[int, tuple[Any, list]] = {}
        with self.lock:
            for oid, holders in list(self.borrowers.items()):
                if holders & dead:
                    holders -= dead
                    if not holders:
                        del self.borrowers[oid]
                        self._maybe_free(oid, frees)
        if frees:
            self.log.info("dead_borrowers_dropped", borrowers=sorted(dead))
        self._send_frees(frees)

    def add_borrower(self, oid: ObjectID, borrower_id: WorkerID, owner: Any, owner_id: WorkerID) -> None:
        """Register ``borrower_id`` for ``oid`` before a ref travels to it (e.g. in a task's result).

        Owned here: recorded at once. Borrowed: sent to the owner now, so it arrives before
        this process's own RemoveBorrowers. Locked by the caller or not: takes the lock.
        """
        with self.lock:
            if borrower_id == owner_id:  # an owner is never its own borrower
                return
            if self.core.objects.owned(oid) is not None:
                self.borrowers.setdefault(oid, set()).add(borrower_id)
            elif owner is not None:
                self.core.transport.send(owner, om.AddBorrowers(borrower_id, (oid,)))

    def hold_for_task(self, task_id: TaskID, refs: list) -> None:
        """Keep ``refs`` alive until ``task_finished(task_id)`` (locked by the caller)."""
        if refs:
            self.task_holds[task_id] = [copy.copy(r) for r in refs]

    def hold_more_for_task(self, task_id: TaskID, refs: list) -> None:
        """Keep ``refs`` (copies already) alive too until ``task_finished(task_id)``. Takes the lock."""
        with self.lock:
            self.task_holds[task_id] = list(self.task_holds.get(task_id, ())) + refs

    def task_finished(self, task_id: TaskID) -> None:
        """The task's result arrived: its arguments need not be kept any more (locked)."""
        self.task_holds.pop(task_id, None)

    def _maybe_free(self, oid: ObjectID, frees: dict) -> None:
        """Free an owned object if nothing holds it. Locked."""
        if self.local.get(oid) or self.borrowers.get(oid):
            return
        objects = self.core.objects
        entry = objects.owned(oid)
        if entry is None:
            return
        if entry.value is None:  # still being computed: free it when it is done
            objects.when_known(oid, self._free_when_ready(oid))
            return
        objects.drop(oid)
        value = entry.value
        self.freed += 1
        if isinstance(value, vm.StoredValue):
            self.freed_bytes += value.size
            store = value.store if value.store is not None else self.core.store
            frees.setdefault(id(store), (store, []))[1].append(oid)

    def _free_when_ready(self, oid: ObjectID) -> Callable[[Any], None]:
        def free(value: Any) -> None:
            frees: dict[int, tuple[Any, list]] = {}
            self._maybe_free(oid, frees)
            self._send_frees(frees)

        return free

    def _send_frees(self, frees: dict) -> None:
        for store, oids in frees.values():
            self.core.transport.send(store, om.FreeObjects(tuple(oids)))

    # ---- values that contain refs ----------------------------------------------------

    def stored_record(self, value: Any, serialized: "SerializedObject", borrower: tuple | None = None) -> Any:
        """The value record for ``serialized``, carrying the refs it contains.

        ``borrower`` = (id, address) of the process the record is for (a task's owner, when
        a worker stores a return value): it is registered as a borrower of each contained
        ref first, so the refs cannot be freed while the record travels.
        """
        refs = serialized.contained_refs
        if refs and borrower is not None:
            for ref in refs:
                self.add_borrower(ref.id, borrower[0], ref.owner, ref.owner_id)
        return value_record(value, refs)

"""Worker leases: which tasks may run under one, and the owner's table of the leases it holds.

A worker that finishes a task the local scheduler let it lease on (``ExecuteTasks.lease``)
stays leased to the task's owner: its result carries a ``LeaseGrant``, and the owner pushes
its next task of the same resource shape straight to that worker (``ExecuteTasks.lease_id``),
one at a time, instead of submitting it to the scheduler. The worker is the authority on its
lease: a push it may no longer run it hands back (``LeaseEnded.refused``) and the owner submits
it to the scheduler. A pushed task is followed here until its result arrives, it is handed
back, or its worker is reported dead (``lost``: run it again), whatever became of its lease
meanwhile. See docs/design.md, "Message flow of a task".

I/O-free; ``OwnerLeases`` runs under the owner's lock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from babyray.ids import NodeID, TaskID, WorkerID
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm

# The owner pushes to a lease only within this share of the worker's idle timeout after the
# lease's last grant arrived, so that a push rarely meets a worker that just ended the lease.
PUSH_WINDOW = 0.75
DEAD_WORKERS_KEPT = 1024  # ids of workers reported dead, whose late grants are ignored


def lease_key(spec: vm.TaskSpec) -> tuple | None:
    """The lease a task may run under: its resource shape; None if it may not run under one
    (actor creations and calls, a scheduling strategy, GPUs, a runtime_env, generators, a
    ``max_calls`` limit: its worker may retire after it)."""
    if (
        spec.actor_id is not None
        or spec.scheduling_strategy not in (None, "DEFAULT")
        or spec.resources.get("GPU")
        or spec.runtime_env
        or spec.generator
        or spec.max_calls
    ):
        return None
    return tuple(sorted(spec.resources.items()))


@dataclass(slots=True, eq=False)
class Lease:
    """A worker leased to this owner; ``in_flight``: the task pushed to it, until its result."""

    worker_id: WorkerID
    address: Any
    key: tuple
    lease_id: int
    idle_timeout: float
    granted_at: float  # when its last grant arrived (monotonic seconds)
    in_flight: vm.TaskSpec | None = None
    cancelled: bool = False  # the owner cancelled ``in_flight``


class OwnerLeases:
    """The leases one owner holds, by resource shape, and the task in flight on each (followed
    after its lease was dropped, too)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple, list[Lease]] = {}
        self._by_task: dict[TaskID, Lease] = {}
        self._dead: OrderedDict[WorkerID, None] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(leases) for leases in self._by_key.values())

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def take(self, spec: vm.TaskSpec, now: float) -> Lease | None:
        """A lease to push ``spec`` to (now in flight on it), or None: submit it to the scheduler.
        Leases too old to push to are forgotten (their workers end them by themselves)."""
        key = lease_key(spec)
        leases = self._by_key.get(key) if key is not None else None
        if not leases:
            return None
        chosen = None
        for lease in list(leases):
            if lease.in_flight is not None:
                continue
            if now - lease.granted_at >= lease.idle_timeout * PUSH_WINDOW:
                self._drop(lease)
            elif chosen is None:
                chosen = lease
        if chosen is not None:
            chosen.in_flight = spec
            self._by_task[spec.task_id] = chosen
        return chosen

    def holder(self, task_id: TaskID) -> Lease | None:
        """The lease ``task_id`` was pushed to, while its result has not arrived."""
        return self._by_task.get(task_id)

    def cancel_requested(self, task_id: TaskID) -> None:
        """The owner cancelled pushed ``task_id``: if it is handed back, it is not submitted again."""
        lease = self._by_task.get(task_id)
        if lease is not None:
            lease.cancelled = True

    def results_arrived(
        self, task_ids: list[TaskID], grant: tm.LeaseGrant | None, node_id: NodeID, now: float
    ) -> None:
        """Results of ``task_ids`` arrived, with ``grant`` (the worker's lease goes on; taken
        only from a worker of this owner's node ``node_id``) or without (a lease that ran one
        of them ended with it)."""
        for task_id in task_ids:
            lease = self._by_task.pop(task_id, None)
            if lease is None:
                continue
            lease.in_flight, lease.cancelled = None, False
            if grant is None or grant.worker_id != lease.worker_id or grant.lease_id != lease.lease_id:
                self._drop(lease)
        if grant is not None:
            self._granted(grant, node_id, now)

    def _granted(self, grant: tm.LeaseGrant, node_id: NodeID, now: float) -> None:
        if grant.node_id != node_id or grant.worker_id in self._dead:
            return  # its worker ends it when idle (another node's worker, or one reported dead)
        leases = self._by_key.setdefault(grant.key, [])
        for lease in leases:
            if lease.worker_id == grant.worker_id and lease.lease_id == grant.lease_id:
                lease.granted_at = now
                return
        leases.append(
            Lease(grant.worker_id, grant.address, grant.key, grant.lease_id, grant.idle_timeout, now)
        )

    def ended(
        self, worker_id: WorkerID, lease_id: int, refused: TaskID | None = None
    ) -> tuple[vm.TaskSpec | None, bool]:
        """The worker ended that lease, handing back pushed task ``refused`` unrun: returns its
        spec (None if not followed here any more) and whether the owner cancelled it."""
        for lease in self._leases_of(worker_id):
            if lease.lease_id == lease_id:
                self._drop(lease)
        pushed = self._by_task.pop(refused, None) if refused is not None else None
        if pushed is None or pushed.in_flight is None:
            return None, False
        spec, cancelled = pushed.in_flight, pushed.cancelled
        pushed.in_flight, pushed.cancelled = None, False
        return spec, cancelled

    def drop_worker(self, worker_id: WorkerID) -> None:
        """Push nothing more to ``worker_id`` (it is about to be killed)."""
        for lease in self._leases_of(worker_id):
            self._drop(lease)

    def lost(self, worker_id: WorkerID) -> list[vm.TaskSpec]:
        """The worker died: forget its leases (and any grant of it still on its way); returns
        the tasks pushed to it that are still followed."""
        self._dead[worker_id] = None
        while len(self._dead) > DEAD_WORKERS_KEPT:
            self._dead.popitem(last=False)
        for lease in self._leases_of(worker_id):
            self._drop(lease)
        in_flight = []
        for task_id, lease in list(self._by_task.items()):
            if lease.worker_id == worker_id and lease.in_flight is not None:
                del self._by_task[task_id]
                in_flight.append(lease.in_flight)
                lease.in_flight = None
        return in_flight

    def forget_task(self, task_id: TaskID) -> None:
        """``task_id`` runs again elsewhere (its node died): its lease is gone with that node."""
        lease = self._by_task.pop(task_id, None)
        if lease is not None:
            lease.in_flight = None
            self._drop(lease)

    def _leases_of(self, worker_id: WorkerID) -> list[Lease]:
        return [lease for leases in self._by_key.values() for lease in leases if lease.worker_id == worker_id]

    def _drop(self, lease: Lease) -> None:
        """Push nothing more to ``lease`` (its task in flight, if any, is still followed)."""
        leases = self._by_key.get(lease.key, [])
        if lease in leases:
            leases.remove(lease)
            if not leases:
                del self._by_key[lease.key]

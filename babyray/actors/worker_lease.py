"""A worker's side of its lease: to which owner it is leased, the pushed task it runs, and
when the lease ends.

I/O-free; the worker calls it under its queue lock and sends what the answers say. The worker
is the authority on its lease (see ``babyray.api.leases``): it takes a lease only after a
task its scheduler let it lease on, when nothing else waits on it; it runs a push only while
leased to the pushing owner with nothing else to do; it ends the lease when idle for
``idle_timeout`` seconds, when its scheduler reclaims it (after the pushed task it runs, if
any), or when a pushed task leaves it unrun.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from babyray.actors.batching import address_key
from babyray.api.leases import lease_key
from babyray.ids import TaskID
from babyray.protocol import values as vm


@dataclass(slots=True)
class HeldLease:
    owner: Any  # the owner's address
    key: tuple  # the resource shape of the tasks it runs
    lease_id: int
    idle_since: float  # monotonic seconds
    in_flight: vm.TaskSpec | None = None  # the pushed task it runs
    reclaimed: bool = False  # ends after the pushed task

    def owned_by(self, owner: Any) -> bool:
        return address_key(owner) == address_key(self.owner)


@dataclass(frozen=True, slots=True)
class AfterTask:
    """What a finished task means for the lease: ``grant`` the lease to announce with its
    result (``new``: just taken, so the scheduler learns it from the task's done message);
    ``ended`` the lease it ended; ``pushed``: it ran under a lease (no done message)."""

    pushed: bool = False
    grant: HeldLease | None = None
    new: bool = False
    ended: HeldLease | None = None


class WorkerLease:
    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout  # 0: leases are off
        self.lease: HeldLease | None = None
        self._may_lease: set[TaskID] = set()  # tasks the scheduler sent with ExecuteTasks.lease
        self._last_id = 0

    def allow(self, specs: tuple) -> None:
        """The scheduler lets the worker lease itself after these tasks (one, in practice)."""
        if self.idle_timeout > 0:
            self._may_lease.update(s.task_id for s in specs)

    def accept_push(self, spec: vm.TaskSpec, lease_id: int, idle: bool) -> bool:
        """Whether to run ``spec``, pushed under ``lease_id`` (``idle``: the worker has nothing
        else to run)."""
        lease = self.lease
        if (
            lease is None
            or lease.lease_id != lease_id
            or not idle
            or lease.reclaimed
            or lease.in_flight is not None
            or not lease.owned_by(spec.owner)
            or lease_key(spec) != lease.key
        ):
            return False
        lease.in_flight = spec
        return True

    def refuse_push(self, spec: vm.TaskSpec) -> HeldLease | None:
        """A push it will not run goes to the scheduler; a lease of that owner ends with it."""
        lease = self.lease
        if lease is not None and lease.owned_by(spec.owner) and lease.in_flight is None:
            self.lease = None
            return lease
        return None

    def task_done(self, spec: vm.TaskSpec, nothing_queued: bool, now: float) -> AfterTask:
        """``spec`` finished (``nothing_queued``: no task waits on the worker)."""
        lease = self.lease
        if lease is not None and lease.in_flight is not None and lease.in_flight.task_id == spec.task_id:
            lease.in_flight = None
            if lease.reclaimed or not nothing_queued:
                self.lease = None
                return AfterTask(pushed=True, ended=lease)
            lease.idle_since = now
            return AfterTask(pushed=True, grant=lease)
        if spec.task_id not in self._may_lease:
            return AfterTask()
        self._may_lease.discard(spec.task_id)
        key = lease_key(spec)
        if not nothing_queued or lease is not None or key is None:
            return AfterTask()
        self._last_id += 1
        self.lease = HeldLease(spec.owner, key, self._last_id, now)
        return AfterTask(grant=self.lease, new=True)

    def reclaim(self) -> HeldLease | None:
        """The scheduler wants the lease back: the lease ended now (None: none, or it ends after
        the pushed task it runs)."""
        lease = self.lease
        if lease is None:
            return None
        if lease.in_flight is not None:
            lease.reclaimed = True
            return None
        self.lease = None
        return lease

    def expire(self, now: float) -> tuple[HeldLease | None, float | None]:
        """``(the lease ended for idleness or None, seconds until the next check or None: no
        lease to watch)``."""
        lease = self.lease
        if lease is not None and lease.in_flight is None:
            idle = now - lease.idle_since
            if idle >= self.idle_timeout:
                self.lease = None
                return lease, self.idle_timeout if self._may_lease else None
            return None, self.idle_timeout - idle
        return None, self.idle_timeout if lease is not None or self._may_lease else None

    def handed_back(self, specs: list[vm.TaskSpec]) -> HeldLease | None:
        """These tasks leave the worker unrun (to its scheduler): a lease whose pushed task is
        among them ends (returned)."""
        ids = {s.task_id for s in specs}
        self._may_lease -= ids
        lease = self.lease
        if lease is not None and lease.in_flight is not None and lease.in_flight.task_id in ids:
            self.lease = None
            return lease
        return None

    def pushed(self, task_id: TaskID) -> vm.TaskSpec | None:
        """The spec of ``task_id`` if it is the pushed task the worker runs."""
        lease = self.lease
        if lease is not None and lease.in_flight is not None and lease.in_flight.task_id == task_id:
            return lease.in_flight
        return None

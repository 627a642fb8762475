"""The local scheduler's table of its workers: each one's state, the tasks it holds and the
resources they take from the node's pool.

I/O-free. A worker holds the tasks sent to it, in order: the first runs, the rest wait
behind it. The resources of the running task are ``held`` by the worker and taken from the
pool while it is BUSY (or hosts an actor); a worker BLOCKED in ``get`` lends them back until
it resumes. A worker that stays LEASED to a task's owner after the task (the owner pushes its
next tasks straight to it, see ``babyray.api.leases``) keeps them charged as if BUSY until the
lease is returned. Every change of state goes through one method of ``WorkerTable``
(``TRANSITIONS`` lists the allowed ones), and each of them keeps the pool in step: a worker
that holds no task and no lease any more gives its resources back whichever message told us
so (done, handed back, returned while blocked, lease returned), and a worker that dies or
stops gives back what it took.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from babyray.actors.batching import address_key
from babyray.actors.gpu_ids import GpuIds
from babyray.actors.resources import ResourcePool
from babyray.ids import ActorID, TaskID, WorkerID
from babyray.protocol import values as vm

LEASE_CONTACTS_KEPT = 32  # owners remembered per worker to tell of its death


class WorkerState(enum.Enum):
    STARTING = "STARTING"  # process started, not yet ready
    IDLE = "IDLE"  # ready, holds no task: takes the next one
    BUSY = "BUSY"  # runs a task (more may wait behind it); takes its resources from the pool
    BLOCKED = "BLOCKED"  # its task waits in get; its resources are lent to other workers
    LEASED = "LEASED"  # leased to an owner that pushes tasks to it; takes its resources like BUSY
    ACTOR = "ACTOR"  # dedicated to one actor for its lifetime
    EXITING = "EXITING"  # asked to stop (its actor called exit_actor, its placement group went)
    DEAD = "DEAD"  # its process ended, or it was stopped: no longer in the table


TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.STARTING: frozenset({WorkerState.IDLE, WorkerState.EXITING, WorkerState.DEAD}),
    WorkerState.IDLE: frozenset(
        {WorkerState.BUSY, WorkerState.ACTOR, WorkerState.BLOCKED, WorkerState.EXITING, WorkerState.DEAD}
    ),
    WorkerState.BUSY: frozenset(
        {WorkerState.IDLE, WorkerState.LEASED, WorkerState.BLOCKED, WorkerState.EXITING, WorkerState.DEAD}
    ),
    WorkerState.BLOCKED: frozenset(
        {WorkerState.BUSY, WorkerState.IDLE, WorkerState.LEASED, WorkerState.EXITING, WorkerState.DEAD}
    ),
    WorkerState.LEASED: frozenset(
        {WorkerState.IDLE, WorkerState.BLOCKED, WorkerState.EXITING, WorkerState.DEAD}
    ),
    WorkerState.ACTOR: frozenset({WorkerState.EXITING, WorkerState.DEAD}),
    WorkerState.EXITING: frozenset({WorkerState.DEAD}),
    WorkerState.DEAD: frozenset(),
}


@dataclass(slots=True)
class WorkerRecord:
    worker_id: WorkerID
    address: Any
    pid: int
    env_key: str = ""  # its runtime_env's pool: it runs only tasks of that environment
    state: WorkerState = WorkerState.STARTING
    assigned: list[vm.TaskSpec] = field(default_factory=list)  # specs sent, in order; [0] is running
    held: dict[str, float] = field(default_factory=dict)  # resources of the running task (or the actor)
    idle_since: float = field(default_factory=time.monotonic)
    actor_id: ActorID | None = None
    started_at: float = field(default_factory=time.time)
    lessee: Any = None  # the owner it is leased to (LEASED, or BLOCKED in a pushed task)
    reclaiming: bool = False  # asked for its lease back (ReclaimLease sent)
    retiring: bool = False  # reached a function's max_calls: stopped once it holds no task
    # Owners that held or may hold a lease on it lately: address key -> (address, last seen);
    # told of its death (LeaseLost), as a lease's end may not have reached its owner.
    lease_contacts: dict[Any, tuple[Any, float]] = field(default_factory=dict)

    @property
    def takes_from_pool(self) -> bool:
        """Whether ``held`` counts against the pool now (a blocked worker lent it)."""
        return self.state is not WorkerState.BLOCKED


@dataclass(frozen=True, slots=True)
class Held:
    """What a worker that died held: the task it ran and those queued behind it."""

    worker: WorkerRecord
    running: vm.TaskSpec | None
    unstarted: tuple[vm.TaskSpec, ...]
    last_state: WorkerState  # its state before it was removed (EXITING: its end was expected)


class WorkerTable:
    def __init__(self, pool: ResourcePool, gpus: GpuIds | None = None) -> None:
        self.pool = pool
        self.gpus = gpus if gpus is not None else GpuIds(int(pool.total.get("GPU", 0)))
        self._workers: dict[WorkerID, WorkerRecord] = {}
        self._by_pid: dict[int, WorkerID] = {}

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[WorkerRecord]:
        return iter(list(self._workers.values()))

    def get(self, worker_id: WorkerID) -> WorkerRecord | None:
        return self._workers.get(worker_id)

    def by_pid(self, pid: int) -> WorkerRecord | None:
        worker_id = self._by_pid.get(pid)
        return self._workers.get(worker_id) if worker_id else None

    # ---- the one place where states change ---------------------------------------------

    def _move(self, worker: WorkerRecord, to: WorkerState) -> None:
        if to not in TRANSITIONS[worker.state]:
            raise ValueError(f"worker {worker.worker_id}: no transition {worker.state.value} -> {to.value}")
        worker.state = to

    def _give_back(self, worker: WorkerRecord) -> None:
        """The worker holds nothing any more: its resources (unless lent) and GPUs return."""
        if worker.takes_from_pool:
            self.pool.release(worker.held)
        worker.held = {}
        self.gpus.release(worker.worker_id)

    def _release(self, worker: WorkerRecord, charged: WorkerState) -> None:
        """The worker holds no task nor lease any more: its resources return; ``charged`` -> IDLE
        (a BLOCKED worker stays so until its ``get`` returns)."""
        self._give_back(worker)
        worker.idle_since = time.monotonic()
        if worker.state is charged:
            self._move(worker, WorkerState.IDLE)

    def add(self, worker: WorkerRecord) -> None:
        """A worker process was started (STARTING)."""
        self._workers[worker.worker_id] = worker
        self._by_pid[worker.pid] = worker.worker_id

    def mark_ready(self, worker_id: WorkerID, address: Any) -> WorkerRecord | None:
        """STARTING -> IDLE; returns the worker (None if unknown, e.g. it died meanwhile)."""
        worker = self._workers.get(worker_id)
        if worker is not None:
            worker.address = address
            if worker.state is WorkerState.STARTING:
                self._move(worker, WorkerState.IDLE)
        return worker

    def assign(self, worker: WorkerRecord, spec: vm.TaskSpec) -> vm.TaskSpec:
        """IDLE -> BUSY (ACTOR for an actor's creation): the worker runs ``spec`` and takes its
        resources (and GPUs) from the pool; returns the spec to send, with its GPU ids."""
        self._move(worker, WorkerState.ACTOR if spec.actor_creation else WorkerState.BUSY)
        self.pool.acquire(spec.resources)
        worker.held = dict(spec.resources)
        worker.actor_id = spec.actor_id if spec.actor_creation else None
        spec = spec.with_gpu_ids(self.gpus.lease(worker.worker_id, spec.resources.get("GPU", 0)))
        worker.assigned.append(spec)
        return spec

    def queue_behind(self, worker: WorkerRecord, spec: vm.TaskSpec) -> vm.TaskSpec:
        """Pipelining: ``spec`` waits behind the BUSY worker's running task, on its resources
        (and GPUs); returns the spec to send."""
        if worker.state is not WorkerState.BUSY:
            raise ValueError(f"worker {worker.worker_id} is {worker.state.value}: nothing to queue behind")
        spec = spec.with_gpu_ids(self.gpus.ids(worker.worker_id))
        worker.assigned.append(spec)
        return spec

    def finish(
        self, worker: WorkerRecord, task_ids: set[TaskID], lessee: Any = None, now: float = 0.0
    ) -> list[vm.TaskSpec]:
        """The worker no longer holds these tasks (done, or handed back unstarted); returns the
        specs dropped. Holding none any more, a pool worker gives its resources back: BUSY -> IDLE
        (BLOCKED stays so until its ``get`` returns; its resources were lent already) - unless it
        stays leased to ``lessee`` (at ``now``): BUSY -> LEASED, its resources still charged.
        A worker that still holds tasks takes no lease (``lessee`` is then not recorded)."""
        if lessee is not None:
            self.note_lease_contact(worker, lessee, now)
        dropped = [s for s in worker.assigned if s.task_id in task_ids]
        if not dropped:
            return dropped
        worker.assigned = [s for s in worker.assigned if s.task_id not in task_ids]
        if not worker.assigned and worker.state in (WorkerState.BUSY, WorkerState.BLOCKED):
            if lessee is not None:
                worker.lessee = lessee
                if worker.state is WorkerState.BUSY:
                    self._move(worker, WorkerState.LEASED)
                return dropped
            self._release(worker, WorkerState.BUSY)
        return dropped

    def end_lease(self, worker: WorkerRecord) -> bool:
        """The worker returned its lease: LEASED -> IDLE, its resources back (BLOCKED in a pushed
        task: they were lent; it turns IDLE when its ``get`` returns). False if it held none."""
        if worker.lessee is None:
            return False
        worker.lessee = None
        worker.reclaiming = False
        if worker.assigned:  # (not while it holds a lease; kept safe)
            return True
        self._release(worker, WorkerState.LEASED)
        return True

    def note_lease_contact(self, worker: WorkerRecord, owner: Any, now: float) -> None:
        """``owner`` holds, took or may take a lease on ``worker`` at ``now`` (the latest
        ``LEASE_CONTACTS_KEPT`` owners are kept)."""
        contacts = worker.lease_contacts
        contacts.pop(address_key(owner), None)
        contacts[address_key(owner)] = (owner, now)
        while len(contacts) > LEASE_CONTACTS_KEPT:
            del contacts[next(iter(contacts))]

    def lease_contacts(self, worker: WorkerRecord, now: float, window: float) -> list[Any]:
        """The owners to tell of the worker's death: its lessee, and those seen within ``window``
        seconds before ``now``."""
        owners = {key: owner for key, (owner, seen) in worker.lease_contacts.items() if now - seen <= window}
        if worker.lessee is not None:
            owners[address_key(worker.lessee)] = worker.lessee
        return list(owners.values())

    def block(self, worker: WorkerRecord) -> None:
        """Its running task waits in ``get``: BUSY, LEASED (a pushed task) or IDLE -> BLOCKED,
        lending its resources."""
        if worker.state in (WorkerState.BUSY, WorkerState.IDLE, WorkerState.LEASED):
            self.pool.release(worker.held)
            self._move(worker, WorkerState.BLOCKED)

    def unblock(self, worker: WorkerRecord) -> None:
        """Its ``get`` returned: BLOCKED -> BUSY (LEASED in a pushed task), taking its resources
        again (the pool may be overcommitted for a moment, as in Ray), or IDLE if its task ended
        meanwhile."""
        if worker.state is not WorkerState.BLOCKED:
            return
        if worker.assigned or worker.lessee is not None:
            self._move(worker, WorkerState.BUSY if worker.assigned else WorkerState.LEASED)
            self.pool.acquire(worker.held)
        else:
            self._move(worker, WorkerState.IDLE)
            worker.idle_since = time.monotonic()

    def mark_exiting(self, worker: WorkerRecord) -> None:
        """Asked to stop; it takes no task any more and keeps what it holds until it is gone."""
        if worker.state is WorkerState.BLOCKED:  # what it holds was lent: count it again until it ends
            self.pool.acquire(worker.held)
        if worker.state is not WorkerState.EXITING:
            self._move(worker, WorkerState.EXITING)

    def disown_held(self, worker: WorkerRecord) -> None:
        """Its resources went away with their placement group (the pool dropped their names):
        nothing of them returns."""
        worker.held = {}

    def remove(self, worker_id: WorkerID) -> Held | None:
        """Forget a worker (its process ended or is being stopped): what it took returns to the
        pool; returns what it held (None if it was forgotten already)."""
        worker = self._workers.pop(worker_id, None)
        if worker is None:
            return None
        if self._by_pid.get(worker.pid) == worker_id:
            del self._by_pid[worker.pid]
        last_state = worker.state
        self._give_back(worker)
        self._move(worker, WorkerState.DEAD)
        held = Held(
            worker, worker.assigned[0] if worker.assigned else None, tuple(worker.assigned[1:]), last_state
        )
        worker.assigned = []
        return held

    # ---- queries ---------------------------------------------------------------------

    def idle(self) -> list[WorkerRecord]:
        return [w for w in self._workers.values() if w.state is WorkerState.IDLE]

    def starting(self, env: str) -> int:
        """Workers of runtime_env ``env`` started but not yet ready."""
        return sum(1 for w in self._workers.values() if w.state is WorkerState.STARTING and w.env_key == env)

    def count(self, *states: WorkerState) -> int:
        return sum(1 for w in self._workers.values() if w.state in states)

    def all_blocked(self) -> bool:
        """Whether no worker can take a task now or free one by itself: none is starting, idle,
        running a task or leased (a lease is given back when reclaimed; each of the others waits
        in ``get``, hosts an actor or is leaving)."""
        return not any(
            w.state in (WorkerState.STARTING, WorkerState.IDLE, WorkerState.BUSY, WorkerState.LEASED)
            for w in self._workers.values()
        )

    def to_reclaim(self) -> list[WorkerRecord]:
        """LEASED workers not yet asked for their lease back (marked asked now)."""
        workers = [w for w in self._workers.values() if w.state is WorkerState.LEASED and not w.reclaiming]
        for worker in workers:
            worker.reclaiming = True
        return workers

    def pool_size(self) -> int:
        """Workers that run plain tasks (not dedicated to an actor, not leaving)."""
        return sum(
            1 for w in self._workers.values() if w.actor_id is None and w.state is not WorkerState.EXITING
        )

    def actor_workers(self) -> int:
        return sum(1 for w in self._workers.values() if w.actor_id is not None)

    def pipeline_target(self, spec: vm.TaskSpec, env: str, depth: int) -> WorkerRecord | None:
        """The least-loaded BUSY worker running tasks of ``spec``'s shape and runtime_env with
        fewer than ``depth`` tasks, to queue ``spec`` behind."""
        fitting = [
            w
            for w in self._workers.values()
            if w.state is WorkerState.BUSY
            and len(w.assigned) < depth
            and w.held == spec.resources
            and w.env_key == env
        ]
        return min(fitting, key=lambda w: len(w.assigned), default=None)

    def backlogged(self) -> list[WorkerRecord]:
        """BUSY workers with tasks waiting behind the running one, longest backlog first."""
        return sorted(
            (w for w in self._workers.values() if w.state is WorkerState.BUSY and len(w.assigned) >= 2),
            key=lambda w: -len(w.assigned),
        )

    def holder(self, task_id: TaskID) -> WorkerRecord | None:
        for worker in self._workers.values():
            if any(s.task_id == task_id for s in worker.assigned):
                return worker
        return None

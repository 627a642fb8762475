"""The local scheduler's table of its workers: each process and the tasks it holds.

I/O-free. A worker holds the tasks sent to it, in order (its leases): the first runs, the
rest wait behind it. When a worker process dies, ``remove`` hands back what it held, so
the scheduler retries the running task and requeues the others.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from babyray.protocol import values as vm


class WorkerState(enum.Enum):
    STARTING = "STARTING"  # process started, not yet ready
    IDLE = "IDLE"
    BUSY = "BUSY"
    BLOCKED = "BLOCKED"  # its task waits in get; its CPU is lent to another worker
    ACTOR = "ACTOR"  # dedicated to one actor for its lifetime
    EXITING = "EXITING"  # asked to stop (idle, or its actor called exit_actor)


@dataclass(slots=True)
class WorkerRecord:
    worker_id: str
    address: Any
    pid: int
    ready: bool = False
    blocked: bool = False
    exiting: bool = False
    assigned: list = field(default_factory=list)  # specs sent, in order; [0] is running
    held: dict = field(default_factory=dict)  # resources held for the running task
    idle_since: float = field(default_factory=time.monotonic)
    actor_id: str | None = None
    env_key: str = ""  # its runtime_env's pool: it runs only tasks of that environment
    started_at: float = field(default_factory=time.time)

    @property
    def state(self) -> WorkerState:
        if self.exiting:
            return WorkerState.EXITING
        if not self.ready:
            return WorkerState.STARTING
        if self.actor_id is not None:
            return WorkerState.ACTOR
        if self.blocked:
            return WorkerState.BLOCKED
        return WorkerState.BUSY if self.assigned else WorkerState.IDLE

    @property
    def takes_tasks(self) -> bool:
        """An idle pool worker: ready, no task, not blocked, no actor, not leaving."""
        return self.state is WorkerState.IDLE


@dataclass(frozen=True, slots=True)
class Held:
    """What a worker that died held: the task it ran and those queued behind it."""

    worker: WorkerRecord
    running: vm.TaskSpec | None
    unstarted: tuple


class WorkerTable:
    def __init__(self) -> None:
        self._workers: dict[str, WorkerRecord] = {}
        self._by_pid: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[WorkerRecord]:
        return iter(list(self._workers.values()))

    def add(self, worker: WorkerRecord) -> None:
        self._workers[worker.worker_id] = worker
        self._by_pid[worker.pid] = worker.worker_id

    def get(self, worker_id: str) -> WorkerRecord | None:
        return self._workers.get(worker_id)

    def by_pid(self, pid: int) -> WorkerRecord | None:
        worker_id = self._by_pid.get(pid)
        return self._workers.get(worker_id) if worker_id else None

    def mark_ready(self, worker_id: str, address: Any) -> WorkerRecord | None:
        worker = self._workers.get(worker_id)
        if worker is not None:
            worker.ready, worker.address = True, address
        return worker

    def idle(self) -> list[WorkerRecord]:
        return [w for w in self._workers.values() if w.takes_tasks]

    def count(self, *states: WorkerState) -> int:
        return sum(1 for w in self._workers.values() if w.state in states)

    def pool_size(self) -> int:
        """Workers that run plain tasks (not dedicated to an actor, not leaving)."""
        return sum(1 for w in self._workers.values() if w.actor_id is None and not w.exiting)

    def actor_workers(self) -> int:
        return sum(1 for w in self._workers.values() if w.actor_id is not None)

    # ---- leases ----------------------------------------------------------------------

    def assign(self, worker: WorkerRecord, spec: vm.TaskSpec) -> None:
        worker.assigned.append(spec)

    def finish(self, worker: WorkerRecord, task_ids: set[str]) -> list[vm.TaskSpec]:
        """The worker reported these tasks done: drop their leases; returns the specs dropped."""
        done = [s for s in worker.assigned if s.task_id in task_ids]
        worker.assigned = [s for s in worker.assigned if s.task_id not in task_ids]
        return done

    def holder(self, task_id: str) -> WorkerRecord | None:
        for worker in self._workers.values():
            if any(s.task_id == task_id for s in worker.assigned):
                return worker
        return None

    def running_on(self, task_id: str) -> WorkerRecord | None:
        """The worker whose running (first) task is ``task_id``."""
        for worker in self._workers.values():
            if worker.assigned and worker.assigned[0].task_id == task_id:
                return worker
        return None

    def remove(self, worker_id: str) -> Held | None:
        """Forget a worker (its process ended or is being stopped); returns what it held."""
        worker = self._workers.pop(worker_id, None)
        if worker is None:
            return None
        if self._by_pid.get(worker.pid) == worker_id:
            del self._by_pid[worker.pid]
        running, *unstarted = worker.assigned or [None]
        worker.assigned = []
        return Held(worker, running, tuple(unstarted))

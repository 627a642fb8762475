"""Which queued task goes to which worker of a node, now: the local scheduler's dispatch rule.

I/O-free. ``plan_dispatch`` takes tasks off the node's ``TaskQueue`` (the most deeply nested
first, see ``task_queue``) and assigns them to idle workers of the ``WorkerTable`` while the
pool has room (a worker runs only tasks of its runtime_env); with a backlog it queues tasks
behind busy workers running the same shape (pipelining). It returns what the local scheduler
must do: the tasks to send to each worker, the workers to start, the actors refused for want
of a worker, and the workers that may stay leased to their task's owner afterwards (a task
that may run under a lease, sent alone to an idle worker, when no task is left waiting: a
backlog is served here, not by leases). ``steal_requests`` picks the backlogs that idle
workers should take over when the queue is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from babyray.actors.task_queue import TaskQueue
from babyray.actors.worker_table import WorkerRecord, WorkerTable
from babyray.api.leases import lease_key
from babyray.ids import WorkerID
from babyray.protocol import values as vm
from babyray.runtime_env.validation import env_key


@dataclass
class DispatchPlan:
    batches: dict[WorkerID, tuple[Any, list[vm.TaskSpec]]] = field(
        default_factory=dict
    )  # worker id -> (address, specs)
    wanted: list[dict] = field(default_factory=list)  # the runtime_env of each worker to start
    refused: list[vm.TaskSpec] = field(default_factory=list)  # actor creations beyond the worker limit
    leasable: set[WorkerID] = field(default_factory=set)  # workers whose batch may end in a lease

    def send(self, worker: WorkerRecord, spec: vm.TaskSpec) -> None:
        self.batches.setdefault(worker.worker_id, (worker.address, []))[1].append(spec)


def plan_dispatch(
    queue: TaskQueue, workers: WorkerTable, pipeline_depth: int, actor_limit: int, leases: bool = False
) -> DispatchPlan:
    """Assign queued tasks to workers (``actor_limit``: the most workers actors may take;
    ``leases``: whether workers may be leased)."""
    plan = DispatchPlan()
    was_idle: set[WorkerID] = set()
    idle = workers.idle()
    # Queue tasks behind busy workers only for a backlog: a short burst waits here instead,
    # so no task waits behind a long one while a CPU frees up elsewhere. Nor while tasks of
    # several nesting depths wait: the deepest, pipelined, would leave the queue and the next
    # free CPU would go to a shallower task, spreading a recursion level by level.
    pipelining = len(queue) > 2 * workers.pool.cpus()
    for shape in queue.shapes():
        while shape:
            spec = shape.head()
            env = env_key(spec.runtime_env)
            if spec.actor_creation and workers.actor_workers() >= actor_limit:
                plan.refused.append(queue.popped(shape))
            elif workers.pool.fits_now(spec.resources):
                worker = _take_idle(idle, env)
                if worker is None:
                    plan.wanted.append(spec.runtime_env)
                    break
                plan.send(worker, workers.assign(worker, queue.popped(shape)))
                was_idle.add(worker.worker_id)
            elif spec.actor_creation or not pipelining or not shape.one_depth():
                break
            else:
                worker = workers.pipeline_target(spec, env, pipeline_depth)
                if worker is None:
                    break
                plan.send(worker, workers.queue_behind(worker, queue.popped(shape)))
    if leases and not len(queue):
        plan.leasable = {
            worker_id
            for worker_id, (_, specs) in plan.batches.items()
            if worker_id in was_idle and len(specs) == 1 and lease_key(specs[0]) is not None
        }
    return plan


def steal_requests(workers: WorkerTable) -> list[tuple[WorkerRecord, int]]:
    """With the queue empty: ``(worker, count)`` for each backlog that should hand ``count``
    unstarted tasks back, one per idle worker able to run them."""
    idle = workers.idle()
    envs = {w.env_key for w in idle}
    requests: list[tuple[WorkerRecord, int]] = []
    for worker in workers.backlogged():
        if len(requests) >= len(idle):
            break
        if worker.env_key in envs:  # else no idle worker could run what it gives back
            requests.append((worker, len(worker.assigned) // 2))
    return requests


def _take_idle(idle: list[WorkerRecord], key: str) -> WorkerRecord | None:
    """Remove and return an idle worker of runtime_env ``key`` from ``idle``, if any."""
    for i in range(len(idle) - 1, -1, -1):
        if idle[i].env_key == key:
            return idle.pop(i)
    return None

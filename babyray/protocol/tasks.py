"""Running tasks: owner <-> local scheduler <-> worker, and the global scheduler and GCS
when a task leaves its node or its node dies; worker leases, by which an owner pushes tasks
straight to a worker (see docs/design.md, "Message flow of a task")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from babyray.ids import JobID, NodeID, ObjectID, TaskID, WorkerID
from babyray.protocol import pickle_through_init, short_repr


@dataclass(frozen=True, slots=True)
class SubmitTasks:
    """Owner -> local scheduler: tasks whose arguments are resolved, ready to schedule."""

    specs: tuple

    def __repr__(self) -> str:
        return short_repr("SubmitTasks", n=len(self.specs))


@dataclass(frozen=True, slots=True)
class ExecuteTasks:
    """Local scheduler -> worker: run these tasks in order; ``lease``: after the (one) task the
    worker may stay leased to its owner. Or owner -> a worker it holds lease ``lease_id`` on:
    run this one task under it (the scheduler does not know the task)."""

    specs: tuple
    lease: bool = False
    lease_id: int = 0  # > 0: pushed by the owner under that lease

    def __repr__(self) -> str:
        return short_repr("ExecuteTasks", n=len(self.specs), lease=self.lease, lease_id=self.lease_id)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The outcome of one task: a value or ErrorValue per return id."""

    task_id: TaskID
    returns: tuple  # ((object_id, InlineValue | StoredValue | ErrorValue), ...)
    worker_id: WorkerID = WorkerID("")
    node_id: NodeID = NodeID("")
    retryable_crash: bool = False
    started_at: float = 0.0  # when the worker started running it (unix seconds; 0 if it did not run)
    # The store of the node whose worker died running it: returns stored before the death are
    # nobody's if the owner takes this failure, which then frees them there.
    store: Any = None


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """The lease a worker keeps for an owner after its task: push the next task of ``key``'s
    resource shape to ``address`` while the lease is younger than ``idle_timeout``."""

    worker_id: WorkerID
    address: Any
    key: tuple
    lease_id: int
    node_id: NodeID
    idle_timeout: float


@dataclass(frozen=True, slots=True)
class TaskResults:
    """Worker or scheduler -> owner: finished (or failed, or cancelled) tasks; ``grant``: the
    worker stays leased to the owner (None: it holds no lease for it, or no longer)."""

    results: tuple
    grant: LeaseGrant | None = None

    def __repr__(self) -> str:
        return short_repr("TaskResults", n=len(self.results))


@dataclass(frozen=True, slots=True)
class GeneratorItem:
    """Worker -> owner: value ``index`` yielded by a generator task, sent as soon as it is stored."""

    task_id: TaskID
    index: int
    object_id: ObjectID
    value: Any  # InlineValue | StoredValue (or ErrorValue: the error ending a dynamic generator)

    def __repr__(self) -> str:
        return short_repr("GeneratorItem", task=self.task_id, index=self.index)


@dataclass(frozen=True, slots=True)
class WorkerTasksDone:
    """Worker -> local scheduler: these tasks finished on the worker; ``leased_to``: the owner
    it stays leased to (its resources stay charged until ``LeaseReturned``); ``retiring``: the
    last one was its function's ``max_calls``-th run there, so the worker takes no more tasks
    (it hands back those it holds) and waits to be stopped."""

    worker_id: WorkerID
    task_ids: tuple[TaskID, ...]
    leased_to: Any = None
    retiring: bool = False


@dataclass(frozen=True, slots=True)
class ReclaimLease:
    """Local scheduler -> leased worker: tasks wait here; end the lease (after the pushed task
    it runs, if any)."""


@dataclass(frozen=True, slots=True)
class LeaseReturned:
    """Worker -> local scheduler: its lease to ``owner`` ended; it is idle (or its scheduler
    task goes on)."""

    worker_id: WorkerID
    owner: Any


@dataclass(frozen=True, slots=True)
class LeaseEnded:
    """Worker -> owner: lease ``lease_id`` ended; push no more. ``refused``: a task pushed
    under it that the worker did not run: submit it to the local scheduler."""

    worker_id: WorkerID
    lease_id: int
    refused: TaskID | None = None


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """Local scheduler -> owner: ``worker_id``, which may hold a lease of yours, died; run
    again the task you pushed to it: within its retries if it was ``running`` (the task in the
    worker's running-task slot), else as it was (it never started, or its result died with
    the worker)."""

    worker_id: WorkerID
    reason: str
    running: TaskID | None = None


@dataclass(frozen=True, slots=True)
class CancelRunningTask:
    """Worker -> local scheduler: a forced cancel of the task ``spec`` it runs (dispatched or
    pushed; the scheduler never knew a pushed one): fail it with TaskCancelledError and kill
    the worker, which takes no other task meanwhile."""

    worker_id: WorkerID
    spec: Any


@dataclass(frozen=True, slots=True)
class ForceCancelNotRunning:
    """Worker -> local scheduler: the forced cancel of ``task_id`` it passed on found the task
    not running here (queued: it is skipped; or finished): the worker lives."""

    worker_id: WorkerID
    task_id: TaskID


@dataclass(frozen=True, slots=True)
class WorkerBlocked:
    """Worker -> local scheduler: the running task waits in get; here are its unstarted tasks."""

    worker_id: WorkerID
    returned: tuple


@dataclass(frozen=True, slots=True)
class WorkerUnblocked:
    """Worker -> local scheduler: the running task resumed."""

    worker_id: WorkerID


@dataclass(frozen=True, slots=True)
class ReturnTasks:
    """Worker -> local scheduler: tasks it was sent but will not run (it is blocked)."""

    worker_id: WorkerID
    specs: tuple


@dataclass(frozen=True, slots=True)
class StealTasks:
    """Local scheduler -> busy worker: hand back up to ``count`` unstarted tasks (ReturnTasks)."""

    count: int


@dataclass(frozen=True, slots=True)
class TaskInfeasible:
    """Global scheduler -> owner: no alive node has the resources ``task_id`` asks for, so it
    waits until such a node joins; the owner warns its user (as Ray's "cannot be scheduled
    right now" warning does). ``node_resources``: each alive node's total."""

    task_id: TaskID
    function_name: str
    resources: dict
    actor_creation: bool
    node_resources: tuple[dict, ...]


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Owner -> local scheduler -> worker (or global scheduler): cancel ``task_id``; for a task
    pushed under a lease, owner -> that worker (which passes on to its scheduler one it does
    not hold)."""

    task_id: TaskID
    force: bool = False
    recursive: bool = True  # the tasks and actor calls it submitted too


@dataclass(frozen=True, slots=True)
class ForwardTasks:
    """Local scheduler -> global scheduler: tasks this node cannot run soon (or ever)."""

    from_node: str
    specs: tuple

    def __repr__(self) -> str:
        return short_repr("ForwardTasks", n=len(self.specs))


@dataclass(frozen=True, slots=True)
class TasksLost:
    """GCS -> owner: these tasks of yours were placed or running on ``node_id``, which died.
    Local scheduler -> owner (``finished``): these tasks finished on a worker that died just
    after, so their results may not have left it.

    The owner resubmits those it still waits for (a lost node's within ``max_retries``; a
    finished task spends no retry) and ignores the rest.
    """

    node_id: NodeID
    task_ids: tuple[TaskID, ...]
    reason: str = ""
    finished: bool = False

    def __repr__(self) -> str:
        return short_repr("TasksLost", node=self.node_id, n=len(self.task_ids))


@dataclass(frozen=True, slots=True)
class WorkerStart:
    """Local scheduler -> new worker: who it is and where the other parts are."""

    worker_id: WorkerID
    node_id: NodeID
    session_dir: str
    scheduler: Any
    store: Any
    gcs: Any
    job_id: JobID = JobID("")
    config: dict = field(default_factory=dict)
    runtime_env: dict = field(default_factory=dict)  # the environment every task of this worker has
    head_address: str = ""  # the head admin's HOST:PORT (Ray's GCS address)


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """Worker -> local scheduler: started, with its process id."""

    worker_id: WorkerID
    pid: int


pickle_through_init(globals())

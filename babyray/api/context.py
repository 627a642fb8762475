"""Which runtime this process uses: the driver's (made by ``init``) or a worker's.

This is the one process-wide reference in babyray: public functions look the runtime up
here. Those Ray starts itself for (``get``, ``put``, ``.remote()``...) use
``runtime_or_auto_init``; the others raise a clear error before ``init()``.
"""

from __future__ import annotations

import contextvars
import os
import threading
from dataclasses import dataclass
from typing import Any

from babyray.api.core import CoreClient
from babyray.ids import ActorID, JobID, TaskID, new_task_id
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm

_runtime: Any = None


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What user code learns of the task it runs for: its job, namespace and nesting depth, the
    resources and GPU ids it holds, and its name."""

    job_id: JobID
    namespace: str
    nesting_depth: int
    resources: dict
    gpu_ids: tuple
    name: str = ""
    function_name: str = ""  # the function's (``Class.method`` for an actor call), whatever its name

    @classmethod
    def of(cls, spec: vm.TaskSpec) -> TaskFacts:
        return cls(
            spec.job_id,
            spec.namespace,
            spec.nesting_depth,
            dict(spec.resources),
            spec.gpu_ids,
            spec.display_name,
            spec.function_name,
        )


# task_id, scheduling_strategy and facts (a TaskFacts) of the task running in this thread; a
# thread that never ran a task also keeps here the id get_task_id() gives it (thread_task_id)
current_task = threading.local()
# The call of an async actor running in this coroutine: (task id, TaskFacts).
_coroutine_task: contextvars.ContextVar[tuple[TaskID, TaskFacts] | None] = contextvars.ContextVar(
    "babyray_coroutine_task", default=None
)
# The facts of the latest task this worker process started: what threads user code started
# see (as in Ray, where the job, namespace and task depth are the process's, not the thread's).
_latest_facts: TaskFacts | None = None
actor_scheduling_strategy: Any = None  # what the actor hosted by this worker was created with

_actor_host: Any = None  # the user actor this worker process hosts, once constructed


class WorkerRuntime:
    """The runtime seen by user code running inside a worker process."""

    is_driver = False

    def __init__(self, core: CoreClient, start: tm.WorkerStart) -> None:
        self.core = core
        self.node_id = start.node_id
        self.worker_id = start.worker_id
        self.job_id = start.job_id
        self.gcs = start.gcs
        self.runtime_env = start.runtime_env  # the parent environment of the tasks it submits
        self.gcs_address = start.head_address
        self.actor_id: ActorID | None = None  # set once this worker hosts an actor


def set_worker_runtime(runtime: WorkerRuntime) -> None:
    global _runtime
    _runtime = runtime


def set_driver_runtime(runtime: Any) -> None:
    global _runtime
    _runtime = runtime


def runtime_or_none() -> Any:
    return _runtime


def runtime() -> Any:
    """The current runtime; raises if ``init()`` was not called in this process."""
    if _runtime is None:
        raise RuntimeError("babyray is not initialized: call babyray.init() first")
    return _runtime


def runtime_or_auto_init() -> Any:
    """The current runtime; without one, a cluster is started (or joined) first, as Ray does
    on the first call of an API that needs one (see ``public.auto_init``)."""
    if _runtime is None:
        from babyray.api.public import auto_init  # public imports this module

        auto_init()
    return runtime()


def current_task_id() -> TaskID | None:
    """The task (or actor call) this thread, or this coroutine of an async actor, runs; None
    elsewhere (a driver, a thread user code started)."""
    running = _coroutine_task.get()
    if running is not None:
        return running[0]
    return getattr(current_task, "task_id", None)


def thread_task_id() -> TaskID | None:
    """What ``get_task_id()`` says here: the running task's id; in a worker's thread that runs
    none (one user code started), an id of its own that names no task, as Ray gives such a
    thread; None in a driver."""
    task_id = current_task_id()
    if task_id is not None or _runtime is None or _runtime.is_driver:
        return task_id
    own = getattr(current_task, "thread_task_id", None)
    if own is None:
        own = current_task.thread_task_id = new_task_id()
    return own


def task_facts() -> TaskFacts | None:
    """The facts of the task this code runs for: the task of this thread (or coroutine), else
    the latest task this worker started, else the actor it hosts; None in a driver."""
    running = _coroutine_task.get()
    if running is not None:
        return running[1]
    if getattr(current_task, "task_id", None) is not None:
        return current_task.facts
    if _latest_facts is not None:
        return _latest_facts
    return _actor_host.facts if _actor_host is not None else None


def task_function_module() -> str | None:
    """The module of the function the task of this thread runs (set by the worker once it has
    the function); None where none is known."""
    return getattr(current_task, "function_module", None)


def nesting_depth_of_submission() -> int:
    """The nesting depth of a task submitted from here now: one more than the depth of the task
    this code runs for (see ``task_facts``), 0 in a driver."""
    facts = task_facts()
    return facts.nesting_depth + 1 if facts is not None else 0


def current_namespace() -> str:
    """The namespace of the job this code runs for: the driver's; in a worker, that of the
    actor it hosts (its creator's job), else of the task it runs for."""
    if _runtime is not None and _runtime.is_driver:
        return _runtime.namespace
    if _actor_host is not None:
        return _actor_host.namespace
    facts = task_facts()
    return facts.namespace if facts is not None else ""


def current_scheduling_strategy() -> Any:
    """The scheduling strategy of the task running in this thread, else of this worker's actor."""
    strategy = getattr(current_task, "scheduling_strategy", None)
    return strategy if strategy is not None else actor_scheduling_strategy


def task_started(spec: vm.TaskSpec) -> None:
    """Record what ``get_runtime_context()`` and ``get_gpu_ids()`` tell inside the task, in this
    thread and in the threads it starts; a task holding GPUs sees only them
    (CUDA_VISIBLE_DEVICES), as in Ray."""
    global _latest_facts
    current_task.facts = _latest_facts = TaskFacts.of(spec)
    use_gpus(spec.gpu_ids)


def coroutine_started(spec: vm.TaskSpec) -> None:
    """Record, for the coroutine running an async actor's call (``spec``) and those it starts,
    what ``get_runtime_context()`` tells inside that call."""
    _coroutine_task.set((spec.task_id, TaskFacts.of(spec)))


def use_gpus(gpu_ids: tuple) -> None:
    if gpu_ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in gpu_ids)


def set_actor_host(host: Any) -> None:
    global _actor_host
    _actor_host = host


def actor_host() -> Any:
    """The ActorHost of the actor this process hosts, or None (a driver or a task worker)."""
    return _actor_host

"""Which runtime this process uses: the driver's (made by ``init``) or a worker's.

This is the one process-wide reference in babyray: public functions look the runtime up
here. Those Ray starts itself for (``get``, ``put``, ``.remote()``...) use
``runtime_or_auto_init``; the others raise a clear error before ``init()``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from babyray.api.core import CoreClient
from babyray.ids import ActorID
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm

_runtime: Any = None

# task_id, job_id, resources, gpu_ids, nesting_depth, namespace of the task running in this thread
current_task = threading.local()
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


def current_task_id() -> str | None:
    return getattr(current_task, "task_id", None)


def nesting_depth_of_submission() -> int:
    """The nesting depth of a task submitted from this thread now: one more than the running
    task's, 0 outside a task (the driver, an actor's method, a thread the task started)."""
    return getattr(current_task, "nesting_depth", 0) + 1 if current_task_id() is not None else 0


def current_namespace() -> str:
    """The namespace of the job this code runs for: the driver's; in a worker, that of the
    actor it hosts (its creator's job), else of the task running in this thread."""
    if _runtime is not None and _runtime.is_driver:
        return _runtime.namespace
    if _actor_host is not None:
        return _actor_host.namespace
    return getattr(current_task, "namespace", "")


def current_scheduling_strategy() -> Any:
    """The scheduling strategy of the task running in this thread, else of this worker's actor."""
    strategy = getattr(current_task, "scheduling_strategy", None)
    return strategy if strategy is not None else actor_scheduling_strategy


def task_started(spec: vm.TaskSpec) -> None:
    """Record what ``get_runtime_context()`` and ``get_gpu_ids()`` tell inside the task; a task
    holding GPUs sees only them (CUDA_VISIBLE_DEVICES), as in Ray."""
    current_task.job_id, current_task.resources, current_task.gpu_ids = (
        spec.job_id,
        spec.resources,
        spec.gpu_ids,
    )
    current_task.nesting_depth, current_task.namespace = spec.nesting_depth, spec.namespace
    use_gpus(spec.gpu_ids)


def use_gpus(gpu_ids: tuple) -> None:
    if gpu_ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in gpu_ids)


def set_actor_host(host: Any) -> None:
    global _actor_host
    _actor_host = host


def actor_host() -> Any:
    """The ActorHost of the actor this process hosts, or None (a driver or a task worker)."""
    return _actor_host

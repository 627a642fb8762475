"""``get_runtime_context()``: ids of the current job, node, task and actor, as in Ray."""

from __future__ import annotations

import json
from typing import Any

from babyray.api import context
from babyray.api.actor import ActorHandle
from babyray.ids import TaskID
from babyray.protocol import actors as am
from babyray.runtime_env import RuntimeEnv
from babyray.util.placement_group import get_current_placement_group
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

_cancelled: set[str] = set()  # the tasks and actor calls of this worker process that ray.cancel reached


def cancel_requested(task_id: TaskID) -> None:
    """Record that ray.cancel reached ``task_id`` in this worker (``is_canceled()`` says so)."""
    _cancelled.add(task_id)


class RuntimeContext:
    """A view of the calling process's runtime; valid in drivers, tasks and actors.

    Made by ``babyray.get_runtime_context()``; the task id is that of the task running in
    the calling thread (None in a driver); actor facts are those of the actor this worker
    process hosts.
    """

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def get_job_id(self) -> str:
        """The job of the actor, or of the task this code runs for, else this driver's job."""
        host = context.actor_host()
        if host is not None:
            return host.job_id
        facts = context.task_facts()
        return facts.job_id if facts is not None else self._runtime.job_id

    def get_node_id(self) -> str:
        return self._runtime.node_id

    def get_task_id(self) -> str | None:
        """The running task's (or actor call's) id; None in a driver. A thread that user code
        started in a worker gets an id of its own that names no task, as in Ray."""
        return context.thread_task_id()

    def get_task_name(self) -> str | None:
        """The running task's name, as in Ray: the ``name`` its options gave, else its function's
        (``Class.method`` for an actor call); None in a driver."""
        if self._runtime.is_driver:
            return None
        facts = context.task_facts()
        return facts.name if facts is not None else None

    def get_task_function_name(self) -> str | None:
        """The running task's function, module-qualified as in Ray (``module.function``,
        ``module.Class.method`` for an actor call), whatever name its options gave; None in a
        driver."""
        if self._runtime.is_driver:
            return None
        facts = context.task_facts()
        if facts is None:
            return None
        host = context.actor_host()
        module = host.cls.__module__ if host is not None else context.task_function_module()
        return f"{module}.{facts.function_name}" if module else facts.function_name

    def get_actor_id(self) -> str | None:
        host = context.actor_host()
        return host.actor_id if host is not None else None

    def get_actor_name(self) -> str | None:
        """The actor's name: '' for an unnamed actor; None outside an actor."""
        host = context.actor_host()
        return host.name if host is not None else None

    def get_worker_id(self) -> str:
        return self._runtime.worker_id

    def get_assigned_resources(self) -> dict:
        """Resources held for the running task ({'CPU': 1.0} by default) or for the actor
        ({} by default: actors hold no CPU unless asked)."""
        host = context.actor_host()
        if host is not None:
            return dict(host.resources)
        if self._runtime.is_driver:
            raise RuntimeError(
                "get_assigned_resources() is only available in a task or an actor, not in a driver"
            )
        facts = context.task_facts()
        return dict(facts.resources) if facts is not None else {}

    def is_canceled(self) -> bool:
        """Whether ray.cancel() was called on the running task or actor call: a sync actor call
        is not interrupted, it may check this now and then to stop cleanly (as in Ray).

        Raises:
            RuntimeError: in a driver, or in an async actor (its calls get asyncio.CancelledError).
        """
        if self._runtime.is_driver:
            raise RuntimeError("is_canceled() is only available in a task or an actor, not in a driver")
        host = context.actor_host()
        if host is not None and host.is_async:
            raise RuntimeError(
                "is_canceled() is not available in an async actor: ray.cancel() cancels its "
                "calls with asyncio.CancelledError"
            )
        return context.current_task_id() in _cancelled

    @property
    def current_actor(self) -> ActorHandle:
        """The handle of the actor this code runs in, as in Ray (from the GCS: its methods and
        options as its creator gave them).

        Raises:
            RuntimeError: outside an actor.
        """
        host = context.actor_host()
        if host is None:
            raise RuntimeError("This method is only available in an actor.")
        core = self._runtime.core
        reply = core.request(core.gcs, lambda req_id: am.GetActorInfo(req_id, host.actor_id))
        if reply.info is None:
            raise RuntimeError(f"The GCS does not know this actor ({host.actor_id})")
        return ActorHandle(reply.info)

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        """The ids of the accelerators the running task or actor holds, by resource name, as
        strings: ``{"GPU": ["0"]}`` (babyray knows GPUs only)."""
        return {"GPU": [str(i) for i in get_gpu_ids()]}

    def get_resource_ids(self) -> dict[str, list[str]]:
        """``get_accelerator_ids()``, under Ray's older name."""
        return self.get_accelerator_ids()

    def get_placement_group_id(self) -> str | None:
        """The id of the placement group the running task or actor is in; None outside one."""
        group = get_current_placement_group()
        return group.id if group is not None else None

    @property
    def current_placement_group_id(self) -> str | None:
        """``get_placement_group_id()``, under Ray's older (deprecated) name."""
        return self.get_placement_group_id()

    @property
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        """Whether tasks and actors this code starts without a scheduling strategy go into its
        placement group (its strategy's ``placement_group_capture_child_tasks``); True in a
        driver, as Ray's documentation says."""
        if self._runtime.is_driver:
            return True
        strategy = context.current_scheduling_strategy()
        return bool(
            isinstance(strategy, PlacementGroupSchedulingStrategy)
            and strategy.placement_group_capture_child_tasks
        )

    @property
    def gcs_address(self) -> str:
        """The cluster's address, HOST:PORT of its head (what ``init(address=...)`` takes)."""
        return self._runtime.gcs_address

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """Whether this actor has been restarted (its process died and it was made again)."""
        host = context.actor_host()
        if host is None:
            raise RuntimeError("was_current_actor_reconstructed is only available inside an actor")
        return host.reconstructed

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    @property
    def actor_id(self) -> str | None:
        return self.get_actor_id()

    @property
    def runtime_env(self) -> RuntimeEnv:
        """The environment of this job (driver) or of the running task or actor (worker);
        its local ``working_dir``/``py_modules`` appear as their ``gcs://`` packages."""
        return RuntimeEnv(**self._runtime.runtime_env)

    @property
    def namespace(self) -> str:
        """The namespace of this job (driver), or of the job the running task or actor belongs to."""
        return context.current_namespace()

    def get_runtime_env_string(self) -> str:
        return json.dumps(self._runtime.runtime_env, sort_keys=True)

    def get(self) -> dict:
        return {
            "job_id": self.get_job_id(),
            "node_id": self.get_node_id(),
            "task_id": self.get_task_id(),
            "actor_id": self.get_actor_id(),
            "namespace": self.namespace,
        }


def get_runtime_context() -> RuntimeContext:
    """The runtime context of this process (a first call in a driver may start a cluster)."""
    return RuntimeContext(context.runtime_or_auto_init())


def get_gpu_ids() -> list[int]:
    """The ids of the GPUs the running task or actor holds (0..n-1 on its node); [] in a
    driver and for work that asked for no GPU."""
    context.runtime()
    host = context.actor_host()
    if host is not None:
        return list(host.gpu_ids)
    facts = context.task_facts()
    return list(facts.gpu_ids) if facts is not None else []

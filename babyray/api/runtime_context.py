"""``get_runtime_context()``: ids of the current job, node, task and actor, as in Ray."""
from __future__ import annotations

import json
from typing import Any

from babyray.api import context
from babyray.runtime_env import RuntimeEnv


class RuntimeContext:
    """A view of the calling process's runtime; valid in drivers, tasks and actors.

    Made by ``babyray.get_runtime_context()``; the task and actor ids are those of the task
    running in the calling thread (None in a driver).
    """

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def get_job_id(self) -> str:
        return self._runtime.job_id

    def get_node_id(self) -> str:
        return self._runtime.node_id

    def get_task_id(self) -> str | None:
        return context.current_task_id()

    def get_actor_id(self) -> str | None:
        actor_id = getattr(context.current_task, "actor_id", None)
        return actor_id if actor_id is not None else getattr(self._runtime, "actor_id", None)

    def get_worker_id(self) -> str:
        return self._runtime.worker_id

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

    def get_runtime_env_string(self) -> str:
        return json.dumps(self._runtime.runtime_env, sort_keys=True)

    def get(self) -> dict:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "task_id": self.get_task_id(),
                "actor_id": self.get_actor_id()}


def get_runtime_context() -> RuntimeContext:
    """The runtime context of this process (a first call in a driver may start a cluster)."""
    return RuntimeContext(context.runtime_or_auto_init())

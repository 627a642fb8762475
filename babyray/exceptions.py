"""Ray's public exception hierarchy, as raised by ``get`` and friends.

A task's error re-raises at ``get`` as an object that is both a ``RayTaskError`` and an
instance of the user's exception class (``RayTaskError.as_instanceof_cause``), like Ray.
All exceptions here pickle, so they can cross process boundaries.
"""

from __future__ import annotations

import traceback
from typing import Any


class RayError(Exception):
    """Base of every babyray error."""


class RayTaskError(RayError):
    """A task or actor method raised; carries the cause and the remote traceback.

    ``cause`` is always the user's own exception, never another RayTaskError: a task that
    fails because a task it waited on (or an argument) failed keeps that task's cause, and
    its ``traceback_str`` holds the inner tracebacks, so the class survives any depth.
    """

    def __init__(
        self,
        function_name: str,
        traceback_str: str,
        cause: BaseException | None = None,
        task_id: str = "",
        node_id: str = "",
        worker_id: str = "",
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause: BaseException | None = cause.cause if isinstance(cause, RayTaskError) else cause
        self.task_id = task_id
        self.node_id = node_id
        self.worker_id = worker_id
        super().__init__(self._message())

    def _message(self) -> str:
        where = (
            f" (task {self.task_id}, node {self.node_id}, worker {self.worker_id})" if self.task_id else ""
        )
        return f"{self.function_name}(){where} failed:\n{self.traceback_str}".rstrip()

    def __reduce__(self) -> Any:
        return (
            RayTaskError,
            (self.function_name, self.traceback_str, self.cause, self.task_id, self.node_id, self.worker_id),
        )

    def __str__(self) -> str:
        return self._message()

    @classmethod
    def from_failed_input(
        cls,
        function_name: str,
        error: BaseException,
        task_id: str = "",
        node_id: str = "",
        worker_id: str = "",
    ) -> "RayTaskError":
        """The error of a task not run because an argument is ``error`` (Ray's wording)."""
        text = "".join(traceback.format_exception_only(type(error), error))
        return cls(
            function_name,
            f"At least one of the input arguments for this task could not be computed:\n{text}",
            error,
            task_id,
            node_id,
            worker_id,
        )

    def as_instanceof_cause(self) -> "RayTaskError":
        """An error that is an instance of both RayTaskError and the cause's class."""
        cause_cls = type(self.cause) if self.cause is not None else None
        if cause_cls is None or issubclass(RayTaskError, cause_cls):
            return self
        return _dual_error(cause_cls, self)


def _dual_error(cause_cls: type, err: RayTaskError) -> RayTaskError:
    try:
        cls: type[RayTaskError] = type(
            f"RayTaskError({cause_cls.__name__})",
            (RayTaskError, cause_cls),
            {
                "__init__": lambda s, *a, **k: None,
                "__str__": lambda s: RayTaskError.__str__(s),
                "__reduce__": lambda s: (
                    RayTaskError,
                    (s.function_name, s.traceback_str, s.cause, s.task_id, s.node_id, s.worker_id),
                ),
            },
        )
        dual = cls.__new__(cls)
    except TypeError:  # the cause's class cannot be subclassed (layout conflict): keep plain
        return err
    dual.__dict__.update(err.__dict__)
    dual.args = (str(err),)
    return dual


class PendingCallsLimitExceeded(RayError):
    """An actor call was refused at ``.remote()``: the caller already has ``max_pending_calls``
    calls to that actor queued or running."""


class GetTimeoutError(RayError, TimeoutError):
    """``get`` did not finish within its timeout."""


class TaskCancelledError(RayError):
    """The task was cancelled before it finished."""

    def __init__(self, task_id: str = "") -> None:
        self.task_id = task_id
        super().__init__(f"Task {task_id} was cancelled" if task_id else "Task was cancelled")

    def __reduce__(self) -> Any:
        return (TaskCancelledError, (self.task_id,))


class WorkerCrashedError(RayError):
    """The worker running the task died (and the retries were spent)."""


class RuntimeEnvSetupError(RayError):
    """The task's or actor's ``runtime_env`` could not be set up on its node."""


class TaskPlacementGroupRemoved(RayError):
    """The task's placement group was removed before the task could finish."""


class RayActorError(RayError):
    """An actor cannot run the call."""


class ActorDiedError(RayActorError):
    """The actor is dead: killed, crashed past its restarts, or its constructor raised."""


class ObjectLostError(RayError):
    """Every copy of an object is lost and it cannot be rebuilt."""


class OwnerDiedError(ObjectLostError):
    """The process that owns the object (made it by ``.remote()`` or ``put``) has died, so
    nobody can give its value or rebuild it."""


class ObjectReconstructionFailedError(ObjectLostError):
    """An object was lost and re-executing its lineage failed or ran out of retries."""


class AuthenticationError(RayError):
    """The cluster refused this process's auth token: it is missing, or not the cluster's."""


class OutOfMemoryError(RayError):
    """Not enough memory."""


class ObjectStoreFullError(OutOfMemoryError):
    """The object store is full and nothing can be evicted or spilled."""


__all__ = [
    "RayError",
    "RayTaskError",
    "GetTimeoutError",
    "TaskCancelledError",
    "WorkerCrashedError",
    "RuntimeEnvSetupError",
    "TaskPlacementGroupRemoved",
    "RayActorError",
    "ActorDiedError",
    "ObjectLostError",
    "ObjectReconstructionFailedError",
    "AuthenticationError",
    "OutOfMemoryError",
    "ObjectStoreFullError",
]

"""The one rule for running a task again, and the one way to fail all of a task's returns.

Every place that retries a task (its worker died, its node died, it raised a retryable
exception, an input was lost) asks ``take_retry``; every place that gives up builds the
owner's result with ``failed_result``.
"""

from __future__ import annotations

from typing import Any

from babyray import serialization
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm


def retry_allowed(used: int, max_retries: int) -> bool:
    """True while ``used`` retries are fewer than ``max_retries`` (-1: no limit)."""
    return max_retries == -1 or used < max(max_retries, 0)


def take_retry(spec: vm.TaskSpec) -> vm.TaskSpec | None:
    """The task's next attempt if it has a retry left (spending it), else None."""
    if not retry_allowed(spec.attempt, spec.max_retries):
        return None
    return spec.next_attempt()


def error_value(error: BaseException) -> vm.ErrorValue:
    return vm.ErrorValue(serialization.dumps(error))


def failed_returns(spec: vm.TaskSpec, error: BaseException | vm.ErrorValue) -> tuple:
    """``((object_id, error), ...)`` for every return of the task."""
    value = error if isinstance(error, vm.ErrorValue) else error_value(error)
    return tuple((oid, value) for oid in spec.return_ids)


def failed_result(spec: vm.TaskSpec, error: BaseException | vm.ErrorValue, **fields: Any) -> tm.TaskResult:
    """The task's result with ``error`` as every return value (``fields``: worker_id, node_id...)."""
    return tm.TaskResult(spec.task_id, failed_returns(spec, error), **fields)

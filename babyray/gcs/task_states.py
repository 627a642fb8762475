"""The states of a task and how the GCS merges task events from several senders into one record.

A task's owner reports ``submitted``, ``retried`` and the final state (``finished``,
``failed``, ``cancelled``); the worker running it reports ``scheduled`` (queued in the
worker) and ``running``. Each sender buffers its events, so they reach the GCS out of
order: a worker's ``running`` may arrive after the owner's ``finished``. The rule: a final
state is never replaced by a non-final one; otherwise the event of the later attempt wins,
and within one attempt the later stage (pending < scheduled < running) wins. Fields are
always merged, so a late event still adds its node, worker and timing.

Records hold the plain string (``state.value``), the one the state API and CLI show.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = ["FINAL", "STAGE", "TaskState", "merge_task_event"]


class TaskState(str, Enum):
    """A task's state as its events report it; the values are the strings stored in the task table."""

    SUBMITTED = "submitted"
    RETRIED = "retried"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """Whether no later event may replace this state."""
        return self in FINAL

    @property
    def stage(self) -> int:
        """The order of the non-final states within one attempt (pending < scheduled < running)."""
        return STAGE.get(self, 0)


FINAL = frozenset({TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED})
STAGE = {TaskState.SUBMITTED: 0, TaskState.RETRIED: 0, TaskState.SCHEDULED: 1, TaskState.RUNNING: 2}


def _supersedes(state: TaskState, attempt: int, record: dict) -> bool:
    """Whether an event (``state``, ``attempt``) sets the state of ``record``."""
    stored = record.get("state")
    if stored is None or state.final:
        return True
    current = TaskState(stored)
    if current.final:
        return False
    current_attempt = int(record.get("attempt") or 0)
    if attempt != current_attempt:
        return attempt > current_attempt
    return state.stage >= current.stage


def merge_task_event(record: dict | None, state: TaskState | str, fields: dict[str, Any]) -> dict:
    """Return ``record`` (a new dict if None) with the event's fields merged in.

    ``state`` is a ``TaskState`` or its string. ``fields["attempt"]`` (default: the record's)
    orders events of retried tasks. The record's ``state`` (stored as the plain string) and
    ``attempt`` change only if the event supersedes them.
    """
    state = TaskState(state)
    merged = dict(record or {})
    given = fields.get("attempt")
    attempt = int(given if given is not None else merged.get("attempt") or 0)
    wins = _supersedes(state, attempt, merged)
    for key, value in fields.items():
        if key == "attempt":
            continue
        if value is None and key in merged:
            continue  # a sender that does not know a field does not erase it
        merged[key] = value
    if wins:
        merged["state"] = state.value
        merged["attempt"] = attempt
    return merged

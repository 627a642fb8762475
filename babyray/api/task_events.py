"""Task state changes (the lineage the GCS records), buffered off the task's critical path.

Owners report each task's submission and outcome. Sending each event at once would put a
message to the GCS between a task's result and the next submission; instead events are
collected and sent as one TaskEvents every ``FLUSH_INTERVAL`` seconds by the process's
``PeriodicFlusher`` (babyray/api/flusher.py), which calls ``flush``.
"""

from __future__ import annotations

import threading
from typing import Any

from babyray import exceptions, serialization
from babyray.ids import TaskID
from babyray.protocol import gcs as gm

FLUSH_INTERVAL = 0.2
# The field that keeps a task with enable_task_events=False out of the state API; its events
# still reach the GCS, whose task table is also the lineage object recovery reads.
HIDDEN = {"hidden": True}


def error_fields(blob: bytes) -> tuple[str, dict]:
    """The final state ("failed" or "cancelled") and error fields of a task's error value.

    Runs only for failed tasks, on the owner; an error that does not load is named as such.
    """
    try:
        error = serialization.deserialize(blob)
    except Exception as exc:  # the error class is not importable here: keep what we know
        return "failed", {"error_type": "UnloadableError", "error_message": repr(exc)}
    if isinstance(error, exceptions.TaskCancelledError):
        return "cancelled", {"error_type": "TaskCancelledError", "error_message": str(error)}
    cause = getattr(error, "cause", None) or error
    return "failed", {
        "error_type": type(cause).__name__,
        "error_message": str(cause),
        "traceback": getattr(error, "traceback_str", ""),
    }


class TaskEventBuffer:
    def __init__(self, transport: Any, gcs: Any) -> None:
        self._transport = transport
        self._gcs = gcs
        self._events: list[tuple] = []
        self._provisional: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def add(self, task_id: TaskID, state: str, fields: dict) -> None:
        with self._lock:
            self._events.append((task_id, state, fields))

    def retarget(self, gcs: Any) -> None:
        """Send to a restarted GCS from now on (events still buffered go there too)."""
        with self._lock:
            self._gcs = gcs

    def add_provisional(self, task_id: TaskID, state: str, fields: dict) -> None:
        """Buffer a worker's progress event, dropped by ``discard`` if the task ends before the
        next flush (its owner's final event then says it all, and nothing arrives late)."""
        with self._lock:
            self._provisional[task_id] = (task_id, state, fields)

    def discard(self, task_id: TaskID) -> None:
        with self._lock:
            self._provisional.pop(task_id, None)

    def flush(self) -> None:
        """Send the buffered events. Sent under the lock, so a ``discard`` that comes too late
        to drop a progress event waits until it is on its way, ahead of the task's result."""
        with self._lock:
            events, self._events = self._events, []
            if self._provisional:
                events = list(self._provisional.values()) + events
                self._provisional = {}
            if events:
                self._transport.send(self._gcs, gm.TaskEvents(tuple(events)))

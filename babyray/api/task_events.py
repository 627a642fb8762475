"""Task state changes (the lineage the GCS records), buffered off the task's critical path.

Owners report each task's submission and outcome. Sending each event at once would put a
message to the GCS between a task's result and the next submission; instead events are
collected and sent as one TaskEvents every ``interval`` seconds by a daemon thread.
"""
from __future__ import annotations

import threading
from typing import Any

from babyray.actors import messages as m

FLUSH_INTERVAL = 0.2


class TaskEventBuffer:
    def __init__(self, transport: Any, gcs: Any, interval: float = FLUSH_INTERVAL) -> None:
        self._transport = transport
        self._gcs = gcs
        self._interval = interval
        self._events: list[tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="babyray-task-events", daemon=True)
        self._thread.start()

    def add(self, task_id: str, state: str, fields: dict) -> None:
        with self._lock:
            self._events.append((task_id, state, fields))

    def flush(self) -> None:
        with self._lock:
            events, self._events = self._events, []
        if events:
            self._transport.send(self._gcs, m.TaskEvents(tuple(events)))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()

"""Tasks a worker finished in the last few seconds, whose results may still be on their way.

I/O-free. A worker reports "done" to its local scheduler at once, while the results to a
remote owner may still wait in its outbox; if the worker dies then, the owner must be told to
run again those it still waits for. The local scheduler notes each finished task here and,
on a worker's death, asks which owners to tell.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable

from babyray.ids import TaskID, WorkerID
from babyray.protocol import values as vm

RESULT_GRACE = 5.0  # seconds a finished task's result may still be on its way from its worker


class RecentResults:
    def __init__(self, key: Callable[[Any], Any], grace: float = RESULT_GRACE) -> None:
        self._key = key  # owner address -> a hashable key
        self._grace = grace
        self._by_worker: dict[WorkerID, deque[tuple[float, vm.TaskSpec]]] = {}

    def note(self, worker_id: WorkerID, specs: Iterable[vm.TaskSpec], now: float) -> None:
        """The worker finished ``specs`` (actor calls are not the scheduler's to retry)."""
        recent = self._by_worker.setdefault(worker_id, deque())
        recent.extend((now, s) for s in specs if s.actor_id is None)
        while recent and now - recent[0][0] > self._grace:
            recent.popleft()

    def maybe_lost(self, worker_id: WorkerID, now: float) -> list[tuple[Any, list[TaskID]]]:
        """The worker died: ``[(owner, task_ids)]`` of the tasks it finished within the grace."""
        by_owner: dict[Any, tuple[Any, list[TaskID]]] = {}
        for finished, spec in self._by_worker.pop(worker_id, ()):
            if now - finished <= self._grace:
                by_owner.setdefault(self._key(spec.owner), (spec.owner, []))[1].append(spec.task_id)
        return list(by_owner.values())

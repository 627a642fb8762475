"""The local scheduler's queue of runnable tasks, one FIFO per resource shape.

Tasks of one shape are interchangeable for placement, so dispatch looks only at the head
of each shape's FIFO: its cost grows with the tasks placed, not with the queue's length.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator

from babyray.protocol import values as vm


def shape_of(resources: dict) -> tuple:
    return tuple(sorted(resources.items()))


class TaskQueue:
    def __init__(self) -> None:
        self._by_shape: dict[tuple, deque[vm.TaskSpec]] = {}
        self._length = 0

    def push(self, spec: vm.TaskSpec) -> None:
        self._by_shape.setdefault(shape_of(spec.resources), deque()).append(spec)
        self._length += 1

    def push_front(self, specs: Iterable[vm.TaskSpec]) -> None:
        """Put ``specs`` back at the head of their shapes' FIFOs, keeping their order."""
        for spec in reversed(list(specs)):
            self._by_shape.setdefault(shape_of(spec.resources), deque()).appendleft(spec)
            self._length += 1

    def fifos(self) -> Iterator[deque[vm.TaskSpec]]:
        """The non-empty per-shape FIFOs; callers pop from them with ``popped``."""
        return (q for q in list(self._by_shape.values()) if q)

    def popped(self, fifo: deque[vm.TaskSpec]) -> vm.TaskSpec:
        self._length -= 1
        return fifo.popleft()

    def remove(self, task_id: str) -> vm.TaskSpec | None:
        for fifo in self._by_shape.values():
            for spec in fifo:
                if spec.task_id == task_id:
                    fifo.remove(spec)
                    self._length -= 1
                    return spec
        return None

    def take_all(self, wanted: Callable[[vm.TaskSpec], bool]) -> list[vm.TaskSpec]:
        """Remove and return every queued task for which ``wanted`` is true."""
        taken: list[vm.TaskSpec] = []
        for fifo in self._by_shape.values():
            for spec in [s for s in fifo if wanted(s)]:
                fifo.remove(spec)
                taken.append(spec)
        self._length -= len(taken)
        return taken

    def __len__(self) -> int:
        return self._length

"""The local scheduler's queue of runnable tasks: per resource shape, deepest nesting first.

Tasks of one shape are interchangeable for placement, so dispatch looks only at the head
of each shape's queue: its cost grows with the tasks placed, not with the queue's length.

Within a shape, the head is the oldest of the most deeply nested tasks (``TaskSpec.nesting_depth``):
a task blocked in ``get`` waits for the tasks it submitted, one level deeper, so running the
deepest first finishes nested work (remote recursion) before more of it takes workers. In
first-in first-out order, a recursion would spread level by level, each inner task holding a
blocked worker, until the node ran out of workers before any leaf ran. Tasks of one depth (a
driver's, all at depth 0) keep their order.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable

from babyray.ids import TaskID
from babyray.protocol import values as vm


def shape_of(resources: dict) -> tuple:
    return tuple(sorted(resources.items()))


class ShapeQueue:
    """The queued tasks of one resource shape: a FIFO per nesting depth, deepest first."""

    def __init__(self) -> None:
        self._by_depth: dict[int, deque[vm.TaskSpec]] = {}
        self._deepest = -1  # the depth of the head; -1 when empty

    def __bool__(self) -> bool:
        return self._deepest >= 0

    def head(self) -> vm.TaskSpec:
        """The task to place next: the oldest of the deepest (IndexError when empty)."""
        if self._deepest < 0:
            raise IndexError("head of an empty ShapeQueue")
        return self._by_depth[self._deepest][0]

    def head_depth(self) -> int:
        return self._deepest

    def one_depth(self) -> bool:
        """Whether its tasks are all equally deep (or it is empty)."""
        return len(self._by_depth) <= 1

    def _fifo(self, depth: int) -> deque[vm.TaskSpec]:
        fifo = self._by_depth.get(depth)
        if fifo is None:
            fifo = self._by_depth[depth] = deque()
            self._deepest = max(self._deepest, depth)
        return fifo

    def _drop_if_empty(self, depth: int) -> None:
        if not self._by_depth[depth]:
            del self._by_depth[depth]
            self._deepest = max(self._by_depth, default=-1)

    def append(self, spec: vm.TaskSpec) -> None:
        self._fifo(spec.nesting_depth).append(spec)

    def appendleft(self, spec: vm.TaskSpec) -> None:
        self._fifo(spec.nesting_depth).appendleft(spec)

    def popleft(self) -> vm.TaskSpec:
        spec = self.head()
        self._by_depth[self._deepest].popleft()
        self._drop_if_empty(self._deepest)
        return spec

    def take_all(self, wanted: Callable[[vm.TaskSpec], bool]) -> list[vm.TaskSpec]:
        """Remove and return the queued tasks for which ``wanted`` is true, deepest first."""
        taken: list[vm.TaskSpec] = []
        for depth in sorted(self._by_depth, reverse=True):
            kept: deque[vm.TaskSpec] = deque()
            for spec in self._by_depth[depth]:
                (taken if wanted(spec) else kept).append(spec)
            self._by_depth[depth] = kept
            self._drop_if_empty(depth)
        return taken


class TaskQueue:
    def __init__(self) -> None:
        self._by_shape: dict[tuple, ShapeQueue] = {}
        self._length = 0

    def _shape(self, spec: vm.TaskSpec) -> ShapeQueue:
        key = shape_of(spec.resources)
        shape = self._by_shape.get(key)
        if shape is None:
            shape = self._by_shape[key] = ShapeQueue()
        return shape

    def push(self, spec: vm.TaskSpec) -> None:
        self._shape(spec).append(spec)
        self._length += 1

    def push_front(self, specs: Iterable[vm.TaskSpec]) -> None:
        """Put ``specs`` back at the head of their depth in their shape's queue, keeping their
        order (tasks handed back by a worker were taken from the head)."""
        for spec in reversed(list(specs)):
            self._shape(spec).appendleft(spec)
            self._length += 1

    def shapes(self) -> list[ShapeQueue]:
        """The non-empty shape queues, the deepest head first; callers place their heads and take
        them off with ``popped``."""
        return sorted((q for q in self._by_shape.values() if q), key=lambda q: -q.head_depth())

    def popped(self, shape: ShapeQueue) -> vm.TaskSpec:
        """Take the head of ``shape`` (one of ``shapes()``) off the queue."""
        self._length -= 1
        return shape.popleft()

    def remove(self, task_id: TaskID) -> vm.TaskSpec | None:
        for shape in self._by_shape.values():
            taken = shape.take_all(lambda s: s.task_id == task_id)
            if taken:
                self._length -= len(taken)
                return taken[0]
        return None

    def take_all(self, wanted: Callable[[vm.TaskSpec], bool]) -> list[vm.TaskSpec]:
        """Remove and return every queued task for which ``wanted`` is true."""
        taken = [spec for shape in self._by_shape.values() for spec in shape.take_all(wanted)]
        self._length -= len(taken)
        return taken

    def __len__(self) -> int:
        return self._length

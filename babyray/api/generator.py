"""Generator tasks on the owner's side: Ray's ``ObjectRefGenerator`` and ``DynamicObjectRefGenerator``.

A remote function or actor method that ``yield``s runs as a generator task. Its worker
stores each value as soon as it is yielded and sends it to the task's owner
(``GeneratorItem``, see ``babyray/actors/generator_returns.py``); the owner owns every item.

- streaming (Ray's default for a generator function, or ``num_returns="streaming"``): the
  call returns an ``ObjectRefGenerator``; ``next`` gives the ref of each item as soon as it
  arrives. When the task ends, so does the stream; an error (the generator's own, a crash,
  a cancel) is one more item, whose ``get`` raises it, before ``StopIteration``.
- dynamic (``num_returns="dynamic"``): the call returns one ref, whose value (once the task
  ends) is a ``DynamicObjectRefGenerator`` of the items' refs.

Item ``i`` is object ``object_id_for(task_id, i + 1)``, so lineage finds the task that made
it; return 0 is the task's own result (the item count, or the DynamicObjectRefGenerator).
The owner keeps a stream per generator task until the ObjectRefGenerator is dropped (its
items not yet taken are freed then) or, for a dynamic one, until the task ends.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from babyray import exceptions
from babyray.api.object_ref import ObjectRef
from babyray.api.task_interrupts import shielded
from babyray.ids import PUT_INDEX, ObjectID, TaskID, object_id_for
from babyray.protocol import objects as om
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm

if TYPE_CHECKING:
    from babyray.api.core import CoreClient

STREAMING, DYNAMIC = "streaming", "dynamic"
MAX_ITEMS = PUT_INDEX - 1  # item ids must not reach the index that marks put() objects


def generator_mode(function: Callable | None, num_returns: Any) -> str | None:
    """How a call with this ``num_returns`` option runs: STREAMING, DYNAMIC, or None (a plain task).

    A generator function without an explicit ``num_returns`` streams, as in Ray.
    """
    if num_returns in (STREAMING, DYNAMIC):
        return num_returns
    if (
        num_returns is None
        and function is not None
        and (inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function))
    ):
        return STREAMING
    return None


def item_id(task_id: TaskID, index: int) -> ObjectID:
    """The object id of value ``index`` yielded by generator task ``task_id``."""
    if index >= MAX_ITEMS:
        raise ValueError(
            f"A generator task can yield at most {MAX_ITEMS} values; task {task_id} yielded more"
        )
    return object_id_for(TaskID(task_id), index + 1)


@dataclass(slots=True)
class _Stream:
    mode: str
    items: dict[int, ObjectRef] = field(default_factory=dict)  # arrived, not yet taken by next()
    reported: int = 0  # items 0 .. reported-1 have arrived
    end: int | None = None  # how many items there are, once the task ended


class GeneratorStreams:
    """The streams of the generator tasks a process owns, by task id.

    Methods marked Locked run under ``core.lock`` (the message loop calls ``on_item``).
    """

    def __init__(self, core: "CoreClient") -> None:
        self.core = core
        self.streams: dict[str, _Stream] = {}

    def open(self, task_id: TaskID, mode: str) -> _Stream:
        """Make the stream before the task is submitted (its first item may come at once)."""
        stream = self.streams[task_id] = _Stream(mode)
        return stream

    def watch(self, task_id: TaskID, completed: ObjectRef) -> None:
        """End the stream when the task's own result is known (success, error, crash, cancel)."""
        with self.core.lock:
            self.core.objects.lookup(completed, lambda value: self._ended(task_id, value))

    def close(self, task_id: TaskID) -> None:
        """Forget a stream: its items not taken die with it. Lock-free (called from finalizers)."""
        self.streams.pop(task_id, None)

    def on_item(self, msg: tm.GeneratorItem) -> None:
        """An item arrived from the worker (again, if the task was re-executed). Locked."""
        core, objects = self.core, self.core.objects
        entry = objects.owned(msg.object_id)
        if entry is not None:  # re-executed: a lost item is rebuilt, a kept one stays
            kept, new = entry.value, msg.value
            if (
                isinstance(kept, vm.StoredValue)
                and isinstance(new, vm.StoredValue)
                and kept.node_id != new.node_id
            ):
                core.transport.send(new.store, om.FreeObjects((msg.object_id,)))  # the new copy is not needed
                return
            objects.set_value(msg.object_id, new)
            return
        objects.own_value(msg.object_id, msg.task_id, msg.value)
        ref = ObjectRef(msg.object_id, core.inbox, core.identity)
        stream = self.streams.get(msg.task_id)
        if (
            stream is None
            or msg.index < stream.reported
            or (stream.end is not None and msg.index >= stream.end)
        ):
            return  # nobody will take it (generator dropped, or item taken and freed): freed with ``ref``
        stream.items[msg.index] = ref
        stream.reported = msg.index + 1
        objects.changed.notify_all()

    def _ended(self, task_id: TaskID, value: Any) -> None:
        """The task's result is known. Locked."""
        stream = self.streams.get(task_id)
        if stream is None or stream.end is not None:
            return
        if stream.mode == DYNAMIC:  # the result's DynamicObjectRefGenerator holds the items now
            self.close(task_id)
            return
        if isinstance(value, vm.ErrorValue):
            index = stream.reported
            oid = object_id_for(TaskID(task_id), index + 1)
            self.core.objects.own_value(oid, task_id, value)
            stream.items[index] = ObjectRef(oid, self.core.inbox, self.core.identity)
            stream.reported = index + 1
        stream.end = stream.reported
        self.core.objects.changed.notify_all()

    def reset_items(self, task_id: TaskID) -> None:
        """Make the values of a task about to be re-executed pending again, as its returns. Locked.

        An error item stays: the owner made it when the stream ended, and the stream ends once.
        """
        objects = self.core.objects
        for oid in objects.owned_ids():
            if (
                oid.startswith(task_id)
                and len(oid) == len(task_id) + 4
                and not isinstance(objects.value_of(oid), vm.ErrorValue)
            ):
                objects.make_pending(oid, task_id)


def submit_generator(core: "CoreClient", spec: vm.TaskSpec, submit: Callable[[vm.TaskSpec], list]) -> Any:
    """Submit generator task ``spec`` with ``submit``; an ObjectRefGenerator, or for a dynamic one its ref."""
    assert spec.generator is not None, "a generator task's spec says how it streams"
    with core.lock:
        core.generators.open(spec.task_id, spec.generator)
    refs = submit(spec)
    core.generators.watch(spec.task_id, refs[0])
    if spec.generator == DYNAMIC:
        return refs[0]
    return ObjectRefGenerator(core, spec.task_id, refs[0])


class ObjectRefGenerator:
    """The refs of the values a streaming generator task yields, each as soon as it is yielded.

    ``for ref in gen`` / ``next(gen)`` block until the next value (or the end) is known;
    ``async for`` does not block the event loop. ``ray.wait([gen])`` finds it ready when
    ``next`` would not block. It cannot be passed to other tasks (as in Ray), and is not
    thread-safe.
    """

    def __init__(self, core: "CoreClient", task_id: TaskID, completed: ObjectRef) -> None:
        self._core = core
        self._task_id = task_id
        self._completed = completed
        self._next = 0

    def __iter__(self) -> Iterator[ObjectRef]:
        return self

    @shielded
    def __next__(self) -> ObjectRef:
        return self._next_sync()

    def __aiter__(self) -> "ObjectRefGenerator":
        return self

    async def __anext__(self) -> ObjectRef:
        ref = await asyncio.get_running_loop().run_in_executor(None, self._next_or_none)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _next_or_none(self) -> ObjectRef | None:
        try:
            return self._next_sync()
        except StopIteration:
            return None

    def _next_sync(self, timeout_s: float | None = None) -> ObjectRef:
        """The next item's ref, waiting up to ``timeout_s`` seconds (None: as long as it takes).

        Raises:
            StopIteration: the task ended and every item was taken.
            GetTimeoutError: no next item within ``timeout_s``.
        """
        objects = self._core.objects
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        blocked = False
        try:
            with objects.lock:
                while True:
                    stream = self._stream()
                    ref = stream.items.pop(self._next, None)
                    if ref is not None:
                        self._next += 1
                        return ref
                    if stream.end is not None and self._next >= stream.end:
                        raise StopIteration
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise exceptions.GetTimeoutError(
                            f"no next value from generator task {self._task_id} within {timeout_s}s"
                        )
                    if not blocked and objects.on_block is not None:
                        blocked = True
                        objects.on_block()
                    objects.changed.wait(remaining)
        finally:
            if blocked and objects.on_unblock is not None:
                objects.on_unblock()

    def _stream(self) -> _Stream:
        stream = self._core.generators.streams.get(self._task_id)
        if stream is None:
            raise exceptions.RayError(f"the stream of generator task {self._task_id} was closed")
        return stream

    def next_ready(self) -> bool:
        """True if ``next`` would not block: an item is there, or the stream ended."""
        with self._core.lock:
            stream = self._stream()
            return self._next in stream.items or (stream.end is not None and self._next >= stream.end)

    def is_finished(self) -> bool:
        """True once the task ended and ``next`` has given every item."""
        with self._core.lock:
            stream = self._stream()
            return stream.end is not None and self._next >= stream.end

    @shielded
    def completed(self) -> ObjectRef:
        """A ref ready when the task ends: ``get`` returns the number of values, or raises its error."""
        return self._completed

    def task_id(self) -> str:
        return self._task_id

    def __reduce__(self) -> Any:
        raise TypeError(
            "An ObjectRefGenerator cannot be passed to another task or actor (as in Ray); "
            "pass the refs it gives instead, or use num_returns='dynamic'"
        )

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None:
            core.generators.close(self._task_id)

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._task_id})"


class DynamicObjectRefGenerator:
    """The refs of the values a ``num_returns="dynamic"`` task yielded (the value of its ref).

    It pickles, so it can be passed to other tasks; the refs it holds keep the values alive.
    """

    def __init__(self, refs: list[ObjectRef]) -> None:
        self._refs = list(refs)

    def __iter__(self) -> Iterator[ObjectRef]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


def wait(core: "CoreClient", waitables: list, num_returns: int, timeout: float | None) -> tuple[list, list]:
    """``ray.wait`` over refs and ObjectRefGenerators (ready when ``next`` would not block)."""
    generators = [w for w in waitables if isinstance(w, ObjectRefGenerator)]
    refs = [w for w in waitables if not isinstance(w, ObjectRefGenerator)]
    found = core.objects.collect(refs, num_returns, timeout, lambda: sum(g.next_ready() for g in generators))
    with core.lock:
        ready = [
            w for w in waitables if (w.next_ready() if isinstance(w, ObjectRefGenerator) else w.id in found)
        ]
    chosen = {id(w) for w in ready[:num_returns]}
    return ready[:num_returns], [w for w in waitables if id(w) not in chosen]

"""Running the generator that a task or actor method returns: its values leave one at a time.

- streaming (``spec.generator == "streaming"``): each value is stored and sent to the
  task's owner (``GeneratorItem``) as soon as it is yielded; the task's return is the
  number of values. An exception ends the task as a plain task error (so retries apply);
  the owner turns it into the stream's last item.
- dynamic: the same, then the return is a ``DynamicObjectRefGenerator`` of the items' refs;
  an exception from the generator is stored as one more, final item (as in Ray).
- ``num_returns=k`` and a generator: value i is stored as return i when yielded. If the
  generator raises, or yields fewer than k values, the returns not yet stored hold the
  error. If it yields more (or raises after the k-th value), the k returns keep their
  values and the error is only logged, as Ray documents (a known bug there).

Async generators (``async def`` with ``yield``): an async actor's run on its event loop
beside its other calls (``async_generator_method``); elsewhere they are driven to the end on
a loop of their own.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from typing import TYPE_CHECKING, Any, AsyncGenerator, Callable, Iterator

from babyray import serialization
from babyray.api.generator import STREAMING, DynamicObjectRefGenerator, item_id
from babyray.api.object_ref import ObjectRef
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm

if TYPE_CHECKING:
    from babyray.actors.worker import Worker
    from babyray.api.core import CoreClient


def generator_returns(worker: "Worker", spec: vm.TaskSpec, result: Any) -> tuple | None:
    """The returns of ``spec`` if it is a generator task or ``result`` a generator; else None.

    Raises:
        TypeError: the call was made as a generator task but ``result`` is no generator.
        Exception: whatever a streaming generator raises.
    """
    is_generator = inspect.isgenerator(result) or inspect.isasyncgen(result)
    if spec.generator is None and (not is_generator or spec.num_returns == 0):
        return None
    if not is_generator:
        raise TypeError(
            f"{spec.function_name} was called with num_returns={spec.generator!r}, which needs a "
            f"generator function, but it returned {type(result).__name__}"
        )
    values = _interruptible(worker, spec, _values(worker, result))
    if spec.generator is None:
        return _static(worker, spec, values)
    items = _ItemSender(worker, spec)
    if spec.generator == STREAMING:
        items.send_all(values)
        return ((spec.return_ids[0], vm.InlineValue(serialization.dumps(items.count))),)
    try:
        items.send_all(values)
    except Exception as exc:  # dynamic: the error is the final item
        items.send_error(exc)
    return (
        (
            spec.return_ids[0],
            _core(worker).store_value(
                spec.return_ids[0], items.dynamic_generator(), (spec.owner_id, spec.owner)
            ),
        ),
    )


def async_generator_method(worker: "Worker", spec: vm.TaskSpec, method: Callable) -> Callable:
    """An async actor's async generator method as a coroutine function for the actor's event
    loop, so other calls run meanwhile. It sends the values as they come (streaming, dynamic)
    and returns what the caller's ref holds: the count, the DynamicObjectRefGenerator, or
    (``num_returns=k``) the k values.
    """

    async def run(*args: Any, **kwargs: Any) -> Any:
        values = method(*args, **kwargs)
        if spec.generator is None:
            collected = [value async for value in values]
            if len(collected) != spec.num_returns:
                raise ValueError(
                    f"Task returned {len(collected)} objects, but num_returns={spec.num_returns}."
                )
            return collected[0] if spec.num_returns == 1 else collected
        items = _ItemSender(worker, spec)
        try:
            async for value in values:
                items.store_and_send(value)
        except Exception as exc:
            if spec.generator == STREAMING:
                raise
            items.send_error(exc)
        return items.count if spec.generator == STREAMING else items.dynamic_generator()

    return run


class _ItemSender:
    """Stores a generator task's values as its items and sends each to the owner at once."""

    def __init__(self, worker: "Worker", spec: vm.TaskSpec) -> None:
        self.worker, self.spec = worker, spec
        self.count = 0

    def send_all(self, values: Iterator) -> None:
        for value in values:
            self.store_and_send(value)

    def store_and_send(self, value: Any) -> None:
        spec = self.spec
        self.send(
            _core(self.worker).store_value(
                item_id(spec.task_id, self.count), value, (spec.owner_id, spec.owner)
            )
        )

    def send_error(self, exc: Exception) -> None:
        """The generator raised: its error is one more item (a dynamic generator's last)."""
        self.send(self.worker._error_returns(self.spec, exc, traceback.format_exc())[0][1])

    def dynamic_generator(self) -> DynamicObjectRefGenerator:
        spec = self.spec
        return DynamicObjectRefGenerator(
            [ObjectRef(item_id(spec.task_id, i), spec.owner, spec.owner_id) for i in range(self.count)]
        )

    def send(self, record: Any) -> None:
        task_id = self.spec.task_id
        self.worker.post_from_thread(
            self.spec.owner, tm.GeneratorItem(task_id, self.count, item_id(task_id, self.count), record)
        )
        self.count += 1


def _static(worker: "Worker", spec: vm.TaskSpec, values: Iterator) -> tuple:
    """Returns 0..k-1 from the first k values, stored as they are yielded."""
    k = spec.num_returns
    owner = (spec.owner_id, spec.owner)
    stored: list = []
    try:
        for value in values:
            oid = spec.return_ids[len(stored)]
            stored.append((oid, _core(worker).store_value(oid, value, owner)))
            if len(stored) == k:
                break
        if len(stored) < k:
            raise ValueError(f"Task returned {len(stored)} objects, but num_returns={k}.")
    except Exception as exc:
        return tuple(stored) + worker._error_returns(spec, exc, traceback.format_exc())[len(stored) :]
    _log_past_the_returns(worker, spec, values)
    return tuple(stored)


def _log_past_the_returns(worker: "Worker", spec: vm.TaskSpec, values: Iterator) -> None:
    """Read one more value of a generator whose k returns are all stored: another value, or an
    exception, is only logged (the returns keep the values)."""
    try:
        if next(values, _END) is _END:
            return
        error, error_type = f"Task returned more than num_returns={spec.num_returns} objects.", "ValueError"
    except Exception as exc:
        error, error_type = str(exc), type(exc).__name__
    worker.log.error(
        "generator_error_after_returns",
        task_id=spec.task_id,
        function=spec.function_name,
        num_returns=spec.num_returns,
        error_type=error_type,
        error=error[:500],
    )


_END = object()


def _core(worker: Worker) -> CoreClient:
    assert worker.core is not None, "the worker has started"
    return worker.core


def _values(worker: "Worker", result: Any) -> Iterator:
    """The values of a generator, or of an async generator driven on an event loop."""
    if inspect.isgenerator(result):
        return result
    actor = worker.actor
    return _async_values(result, actor.default_loop() if actor is not None else None)


def _interruptible(worker: "Worker", spec: vm.TaskSpec, values: Iterator) -> Iterator:
    """``values``, each computed where a cancel may interrupt it (the task's own code), not
    while the previous one is stored."""
    while True:
        with worker.user_code(spec):
            value = next(values, _END)
        if value is _END:
            return
        yield value


def _async_values(agen: AsyncGenerator[Any, None], loop: asyncio.AbstractEventLoop | None) -> Iterator:
    own = asyncio.new_event_loop() if loop is None else None
    try:
        while True:
            try:
                if own is not None:
                    value = own.run_until_complete(agen.__anext__())
                else:
                    assert loop is not None
                    value = asyncio.run_coroutine_threadsafe(agen.__anext__(), loop).result()
            except StopAsyncIteration:
                return
            yield value
    finally:
        if own is not None:
            own.close()

"""``Queue``: a first-in, first-out queue kept by an actor, as ``ray.util.queue.Queue``.

The queue lives in an async actor, so callers blocked in ``get`` on an empty queue (or in
``put`` on a full one) wait there without stopping other callers. A ``Queue`` object
pickles (it carries the actor's handle), so it can be passed to tasks and actors, which
then use the same queue.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterable
from typing import Any

from babyray.api.actor import ActorClass, kill
from babyray.api.public import get, wait


class Empty(queue.Empty):
    """Raised by ``get``/``get_nowait``/``get_nowait_batch`` when the queue has too few items."""


class Full(queue.Full):
    """Raised by ``put``/``put_nowait``/``put_nowait_batch`` when the queue has no room."""


class Queue:
    """A FIFO queue; ``maxsize=0`` means unbounded.

    ``actor_options`` are passed to the queue actor's ``.options()`` (e.g. ``{"num_cpus": 1}``).
    """

    def __init__(self, maxsize: int = 0, actor_options: dict | None = None) -> None:
        if not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize must be a non-negative int, got {maxsize!r}")
        self.maxsize = maxsize
        self._actor: Any = ActorClass(_QueueActor, {}).options(**(actor_options or {})).remote(maxsize)

    @property
    def actor(self) -> Any:
        if self._actor is None:
            raise RuntimeError("This Queue was shut down: its actor is gone")
        return self._actor

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return get(self.actor.qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self.size()

    def empty(self) -> bool:
        return get(self.actor.empty.remote())

    def full(self) -> bool:
        return get(self.actor.full.remote())

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; when full, wait for room (at most ``timeout`` seconds if given).

        Raises:
            Full: the queue is full and ``block`` is False, or no room came within ``timeout``.
            ValueError: ``timeout`` is negative.
        """
        get(self._put_call(item, block, timeout))

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``put`` for asyncio code: awaits instead of blocking the event loop."""
        await self._put_call(item, block, timeout)

    def _put_call(self, item: Any, block: bool, timeout: float | None) -> Any:
        if not block:
            return self.actor.put_nowait.remote(item)
        _check_timeout(timeout)
        return self.actor.put.remote(item, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the first item; when empty, wait for one (at most ``timeout`` s).

        Raises:
            Empty: the queue is empty and ``block`` is False, or nothing came within ``timeout``.
            ValueError: ``timeout`` is negative.
        """
        return get(self._get_call(block, timeout))

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` for asyncio code: awaits instead of blocking the event loop."""
        return await self._get_call(block, timeout)

    def _get_call(self, block: bool, timeout: float | None) -> Any:
        if not block:
            return self.actor.get_nowait.remote()
        _check_timeout(timeout)
        return self.actor.get.remote(timeout)

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def put_nowait_batch(self, items: Iterable) -> None:
        """Add all ``items`` in order, or none of them.

        Raises:
            Full: they do not all fit.
            TypeError: ``items`` is not iterable.
        """
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        get(self.actor.put_nowait_batch.remote(list(items)))

    def get_nowait_batch(self, num_items: int) -> list:
        """Remove and return the first ``num_items`` items, or none of them.

        Raises:
            Empty: the queue holds fewer than ``num_items``.
            TypeError / ValueError: ``num_items`` is not an int / is negative.
        """
        if not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return get(self.actor.get_nowait_batch.remote(num_items))

    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """Stop the queue's actor, releasing its resources; the queue is unusable afterwards.

        Without ``force``, calls already sent get up to ``grace_period_s`` seconds to finish.
        """
        if self._actor is None:
            return
        if not force:
            wait([self._actor.qsize.remote()], timeout=grace_period_s)
        kill(self._actor, no_restart=True)
        self._actor = None


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class _QueueActor:
    """The actor that holds the items (an asyncio.Queue on the actor's event loop)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)

    def qsize(self) -> int:
        return self.queue.qsize()

    def empty(self) -> bool:
        return self.queue.empty()

    def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            raise Full(f"no room in the queue (maxsize {self.maxsize}) within {timeout}s") from None

    async def get(self, timeout: float | None = None) -> Any:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty(f"no item in the queue within {timeout}s") from None

    def put_nowait(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            raise Full(f"the queue is full (maxsize {self.maxsize})") from None

    def get_nowait(self) -> Any:
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            raise Empty("the queue is empty") from None

    def put_nowait_batch(self, items: list) -> None:
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            raise Full(
                f"Cannot add {len(items)} items to queue of size {self.queue.qsize()} "
                f"and maxsize {self.maxsize}."
            )
        for item in items:
            self.queue.put_nowait(item)

    def get_nowait_batch(self, num_items: int) -> list:
        if num_items > self.queue.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {self.queue.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]

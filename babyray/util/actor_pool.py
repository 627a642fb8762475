"""``ActorPool``: schedule work over a fixed set of actors, as ``ray.util.ActorPool``.

Each submitted value goes to an idle actor through ``fn(actor, value)``, which returns the
ObjectRef of the call; the actor is busy until that ref is ready and its result taken.
Values submitted while every actor is busy wait in submission order.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from babyray import exceptions
from babyray.api.object_ref import ObjectRef
from babyray.api.public import get, wait


class ActorPool:
    """A fixed pool of actor handles, e.g. ``ActorPool([Worker.remote(), Worker.remote()])``."""

    def __init__(self, actors: list) -> None:
        self._idle: list = list(actors)
        self._busy: dict[ObjectRef, tuple[int, Any]] = {}  # call's ref -> (submission index, actor)
        self._by_index: dict[int, ObjectRef] = {}
        self._next_index = 0  # index the next submitted value gets
        self._next_return = 0  # index get_next returns next
        self._waiting: list[tuple[Callable, Any]] = []  # submitted while no actor was idle

    def map(self, fn: Callable[[Any, Any], ObjectRef], values: Iterable) -> Iterator:
        """Results of ``fn(actor, v)`` for every value, in the values' order (drops earlier results)."""
        self._drop_pending(self.get_next)
        for value in values:
            self.submit(fn, value)

        def results() -> Iterator:
            while self.has_next():
                yield self.get_next()

        return results()

    def map_unordered(self, fn: Callable[[Any, Any], ObjectRef], values: Iterable) -> Iterator:
        """Like ``map``, but yields each result as soon as it is ready."""
        self._drop_pending(self.get_next_unordered)
        for value in values:
            self.submit(fn, value)

        def results() -> Iterator:
            while self.has_next():
                yield self.get_next_unordered()

        return results()

    def _drop_pending(self, get: Callable) -> None:
        while self.has_next():
            try:
                get(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    def submit(self, fn: Callable[[Any, Any], ObjectRef], value: Any) -> None:
        """Run ``fn(actor, value)`` on an idle actor, or once one is free."""
        if not self._idle:
            self._waiting.append((fn, value))
            return
        actor = self._idle.pop()
        ref = fn(actor, value)
        if not isinstance(ref, ObjectRef):
            self._idle.append(actor)
            raise TypeError(
                f"ActorPool: fn(actor, value) must return the ObjectRef of an actor call, "
                f"got {type(ref).__name__}"
            )
        self._busy[ref] = (self._next_index, actor)
        self._by_index[self._next_index] = ref
        self._next_index += 1

    def has_next(self) -> bool:
        """Whether any result is still to be returned."""
        return bool(self._busy)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order.

        Raises:
            StopIteration: nothing is pending.
            TimeoutError: not ready within ``timeout`` seconds (with ``ignore_if_timedout`` the
                task is dropped and the pool moves past it).
            ValueError: after ``get_next_unordered`` returned results out of order.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return >= self._next_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        ref = self._by_index[self._next_return]
        if timeout is not None:
            ready, _ = wait([ref], timeout=timeout)
            if not ready and not ignore_if_timedout:
                raise TimeoutError(f"Timed out waiting for result after {timeout}s")
            if not ready:
                self._take(ref)
                raise TimeoutError(
                    f"Timed out waiting for result after {timeout}s; the task {ref} is dropped"
                )
        return self._result(ref)

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Any next result, the first ready.

        Raises:
            StopIteration: nothing is pending.
            TimeoutError: none ready within ``timeout`` seconds (with ``ignore_if_timedout`` the
                oldest task is dropped).
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = wait(list(self._busy), num_returns=1, timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                dropped = self._by_index[min(i for i, _ in self._busy.values())]
                self._take(dropped)
                raise TimeoutError(
                    f"Timed out waiting for result after {timeout}s; the task {dropped} is dropped"
                )
            raise TimeoutError(f"Timed out waiting for result after {timeout}s")
        return self._result(ready[0])

    def _forget(self, ref: ObjectRef) -> Any:
        """Forget ``ref``'s call; returns the actor that ran it."""
        index, actor = self._busy.pop(ref)
        del self._by_index[index]
        self._next_return = max(self._next_return, index + 1)
        return actor

    def _take(self, ref: ObjectRef) -> None:
        """Drop ``ref``'s call without its result; its actor is idle again."""
        self._return_actor(self._forget(ref))

    def _result(self, ref: ObjectRef) -> Any:
        actor = self._forget(ref)
        try:
            return get(ref)
        except exceptions.ActorDiedError:
            actor = None  # a dead actor leaves the pool, or every later submit would fail on it
            raise
        finally:
            self._return_actor(actor)

    def _return_actor(self, actor: Any) -> None:
        if actor is not None:
            self._idle.append(actor)
        if self._waiting and self._idle:
            self.submit(*self._waiting.pop(0))

    def has_free(self) -> bool:
        """Whether an actor is idle (and no submitted value waits for one)."""
        return bool(self._idle) and not self._waiting

    def pop_idle(self) -> Any:
        """Remove and return an idle actor, or None if none is free."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool (it takes a waiting value at once, if any).

        Raises:
            ValueError: the actor is already in the pool.
        """
        if actor in self._idle or any(actor == a for _, a in self._busy.values()):
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

"""``Pool``: the ``multiprocessing.Pool`` API, with actors instead of local processes.

The pool starts ``processes`` actors (each runs ``initializer(*initargs)`` first) and sends
them the work in chunks, round robin. ``map``/``starmap``/``apply`` wait for the results;
the ``_async`` forms return an ``AsyncResult`` whose callbacks run when the results are in;
``imap``/``imap_unordered`` keep one chunk per actor in flight and yield results as they
come. A function's error is raised where its result is asked for, as in multiprocessing.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections import deque
from multiprocessing import TimeoutError
from typing import Any, Callable, Iterable, Iterator

import cloudpickle

from babyray import exceptions
from babyray.api.actor import ActorClass, kill
from babyray.api.object_ref import ObjectRef
from babyray.api.public import cluster_resources, get, init, is_initialized, wait


class _Failed:
    """A function call's error, carried back in a chunk's results."""

    def __init__(self, error: BaseException) -> None:
        try:
            cloudpickle.dumps(error)
        except Exception:  # keep what the error said when the error itself does not pickle
            error = RuntimeError(f"{type(error).__name__}: {error}")
        self.error = error


class _PoolActor:
    """One of the pool's processes."""

    def __init__(self, initializer: Callable | None, initargs: tuple) -> None:
        if initializer is not None:
            initializer(*initargs)

    def ping(self) -> None:
        """Answered once the initializer has run."""

    def run_batch(self, func: Callable, batch: list) -> list:
        results = []
        for args, kwargs in batch:
            try:
                results.append(func(*args, **kwargs))
            except Exception as exc:
                results.append(_Failed(exc))
        return results


def _chunk_results(ref: ObjectRef) -> list:
    """A chunk's results; an error of the chunk's call itself (e.g. the actor died) stands for them."""
    try:
        return get(ref)
    except exceptions.RayError as exc:
        return [_Failed(exc)]


class AsyncResult:
    """The results of ``apply_async``/``map_async``/``starmap_async``, as in multiprocessing."""

    def __init__(
        self,
        refs: list[ObjectRef],
        callback: Callable | None = None,
        error_callback: Callable | None = None,
        single: bool = False,
    ) -> None:
        self._single = single
        self._callback, self._error_callback = callback, error_callback
        self._chunks: list = [None] * len(refs)
        self._remaining = len(refs)
        self._lock = threading.Lock()
        self._done = threading.Event()
        if not refs:
            self._finish()
        for index, ref in enumerate(refs):
            ref.future().add_done_callback(functools.partial(self._chunk_done, index))

    def _chunk_done(self, index: int, future: Any) -> None:
        error = future.exception()
        self._chunks[index] = [_Failed(error)] if error is not None else future.result()
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        values = [v for chunk in self._chunks for v in chunk]
        failure = next((v for v in values if isinstance(v, _Failed)), None)
        try:
            if failure is not None and self._error_callback is not None:
                self._error_callback(failure.error)
            elif failure is None and self._callback is not None:
                self._callback(values[0] if self._single else values)
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the results are in, or ``timeout`` seconds (no error either way)."""
        self._done.wait(timeout)

    def ready(self) -> bool:
        return self._done.is_set()

    def successful(self) -> bool:
        """Whether no call raised; ValueError if the results are not in yet."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return not any(isinstance(v, _Failed) for chunk in self._chunks for v in chunk)

    def get(self, timeout: float | None = None) -> Any:
        """The results (the one result for ``apply_async``); raises the first call's error.

        Raises:
            multiprocessing.TimeoutError: not in within ``timeout`` seconds.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"results not ready within {timeout}s")
        values = [v for chunk in self._chunks for v in chunk]
        for value in values:
            if isinstance(value, _Failed):
                raise value.error
        return values[0] if self._single else values


class IMapIterator:
    """Results of ``imap`` (in input order) or ``imap_unordered`` (as they finish).

    One chunk per actor is in flight; the next chunk goes to an actor when its last one is done.
    """

    def __init__(
        self, pool: "Pool", func: Callable, iterable: Iterable, chunksize: int, ordered: bool
    ) -> None:
        self._pool, self._func, self._ordered = pool, func, ordered
        items = iter(iterable)
        self._chunks: Iterator[list[tuple[tuple, dict]]] = iter(
            lambda: [((x,), {}) for x in itertools.islice(items, chunksize)], []
        )
        self._in_flight: dict[ObjectRef, tuple[int, int]] = {}  # ref -> (chunk number, actor index)
        self._finished: dict[int, list] = {}  # chunk number -> results, in the order they finished
        self._next_chunk = 0  # the chunk whose results come next (imap)
        self._submitted = 0
        self._ready: deque = deque()
        for actor_index in range(len(pool._actors)):
            self._submit(actor_index)

    def _submit(self, actor_index: int) -> None:
        chunk = next(self._chunks, None)
        if chunk is None:
            return
        ref = self._pool._run_batch(actor_index, self._func, chunk)
        self._in_flight[ref] = (self._submitted, actor_index)
        self._submitted += 1

    def __iter__(self) -> "IMapIterator":
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next result; raises the call's error, or multiprocessing.TimeoutError."""
        while not self._ready:
            number = self._next_chunk if self._ordered else next(iter(self._finished), None)
            if number in self._finished:
                self._ready.extend(self._finished.pop(number))
                self._next_chunk += 1
                continue
            if not self._in_flight:
                raise StopIteration
            done, _ = wait(list(self._in_flight), num_returns=1, timeout=timeout)
            if not done:
                raise TimeoutError(f"no result within {timeout}s")
            number, actor_index = self._in_flight.pop(done[0])
            self._finished[number] = _chunk_results(done[0])
            self._submit(actor_index)
        value = self._ready.popleft()
        if isinstance(value, _Failed):
            raise value.error
        return value


class Pool:
    """A pool of ``processes`` actors (default: the cluster's CPUs).

    Args:
        processes: how many actors; at most the cluster's CPU count.
        initializer, initargs: each actor runs ``initializer(*initargs)`` when it starts.
        maxtasksperchild: an actor is replaced after this many chunks (default: never).
        context: ignored, as in Ray.
        ray_address: the cluster to connect to when babyray is not initialized yet
            (default: ``BABYRAY_ADDRESS``, else a new local cluster of ``processes`` CPUs).
        ray_remote_args: ``.options()`` for the actors (by default they hold no CPU).
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable | None = None,
        initargs: Iterable | None = None,
        maxtasksperchild: int | None = None,
        context: Any = None,
        ray_address: str | None = None,
        ray_remote_args: dict | None = None,
    ) -> None:
        if processes is not None and (not isinstance(processes, int) or processes <= 0):
            raise ValueError(f"Processes in the pool must be >0, got {processes!r}")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError(f"maxtasksperchild must be a positive int, got {maxtasksperchild!r}")
        if not is_initialized():
            address = ray_address or os.environ.get("BABYRAY_ADDRESS")
            if address:
                init(address)
            else:
                init(num_cpus=processes)
        cpus = int(cluster_resources().get("CPU", 0))
        processes = cpus if processes is None else processes
        if processes <= 0 or processes > cpus:
            raise ValueError(
                f"Tried to start a pool with {processes} processes on a cluster with {cpus} CPUs"
            )
        self._actor_class = ActorClass(_PoolActor, {"num_cpus": 0}).options(**(ray_remote_args or {}))
        self._init = (initializer, tuple(initargs or ()))
        self._maxtasks = maxtasksperchild
        self._closed = False
        self._next_actor = 0
        self._pending: list[ObjectRef] = []  # chunks sent and maybe not done (pruned as they finish)
        self._retired: list[Any] = []  # actors past maxtasksperchild, killed once their work is done
        self._actors = [self._new_actor() for _ in range(processes)]
        get([actor.ping.remote() for actor, _ in self._actors])

    def _new_actor(self) -> list:
        return [self._actor_class.remote(*self._init), 0]  # [handle, chunks sent]

    def _run_batch(self, actor_index: int, func: Callable, batch: list) -> ObjectRef:
        self._check_running()
        entry = self._actors[actor_index]
        ref = entry[0].run_batch.remote(func, batch)
        entry[1] += 1
        if self._maxtasks is not None and entry[1] >= self._maxtasks:
            self._retired.append((entry[0], ref))
            self._actors[actor_index] = self._new_actor()
        self._reap()
        self._pending.append(ref)
        return ref

    def _reap(self) -> None:
        """Forget finished chunks; stop retired actors whose last chunk is done."""
        if self._pending:
            self._pending = wait(self._pending, num_returns=len(self._pending), timeout=0)[1]
        for actor, last in list(self._retired):
            if wait([last], timeout=0)[0]:
                self._retired.remove((actor, last))
                kill(actor)

    def _round_robin(self) -> int:
        self._check_running()
        index = self._next_actor % len(self._actors)
        self._next_actor += 1
        return index

    def _chunksize(self, count: int, chunksize: int | None) -> int:
        if chunksize is not None:
            if not isinstance(chunksize, int) or chunksize <= 0:
                raise ValueError(f"chunksize must be a positive int, got {chunksize!r}")
            return chunksize
        size, extra = divmod(count, len(self._actors) * 4)
        return max(1, size + bool(extra))

    def _map_refs(self, func: Callable, iterable: Iterable, chunksize: int | None, unpack: bool) -> list:
        self._check_running()
        items = list(iterable)
        size = self._chunksize(len(items), chunksize)
        calls: list[tuple[tuple, dict]] = [(tuple(x) if unpack else (x,), {}) for x in items]
        return [
            self._run_batch(self._round_robin(), func, calls[i : i + size])
            for i in range(0, len(calls), size)
        ]

    def apply(self, func: Callable, args: tuple = (), kwds: dict | None = None) -> Any:
        """``func(*args, **kwds)`` on one of the actors; its result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(
        self,
        func: Callable,
        args: tuple = (),
        kwds: dict | None = None,
        callback: Callable | None = None,
        error_callback: Callable | None = None,
    ) -> AsyncResult:
        ref = self._run_batch(self._round_robin(), func, [(tuple(args or ()), dict(kwds or {}))])
        return AsyncResult([ref], callback, error_callback, single=True)

    def map(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        """``[func(x) for x in iterable]``, computed by the actors."""
        return self.map_async(func, iterable, chunksize).get()

    def map_async(
        self,
        func: Callable,
        iterable: Iterable,
        chunksize: int | None = None,
        callback: Callable | None = None,
        error_callback: Callable | None = None,
    ) -> AsyncResult:
        return AsyncResult(self._map_refs(func, iterable, chunksize, False), callback, error_callback)

    def starmap(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        """``[func(*args) for args in iterable]``, computed by the actors."""
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(
        self,
        func: Callable,
        iterable: Iterable,
        chunksize: int | None = None,
        callback: Callable | None = None,
        error_callback: Callable | None = None,
    ) -> AsyncResult:
        return AsyncResult(self._map_refs(func, iterable, chunksize, True), callback, error_callback)

    def imap(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> IMapIterator:
        """An iterator of ``func(x)`` in input order; the input is read as actors free up."""
        self._check_running()
        return IMapIterator(self, func, iterable, self._chunksize(0, chunksize), ordered=True)

    def imap_unordered(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> IMapIterator:
        """Like ``imap``, in the order the results finish."""
        self._check_running()
        return IMapIterator(self, func, iterable, self._chunksize(0, chunksize), ordered=False)

    def _check_running(self) -> None:
        if self._closed:
            raise ValueError("Pool not running")

    def close(self) -> None:
        """Accept no more work; work already sent finishes (``join`` waits for it)."""
        self._closed = True

    def terminate(self) -> None:
        """Stop the actors now, work in flight included."""
        self._closed = True
        for actor in [a for a, _ in self._actors] + [a for a, _ in self._retired]:
            kill(actor)
        self._actors, self._retired, self._pending = [], [], []

    def join(self) -> None:
        """Wait for the work sent before ``close`` to finish, then stop the actors.

        Raises:
            ValueError: the pool was not closed first.
        """
        if not self._closed:
            raise ValueError("Pool is still running")
        if self._pending:
            wait(self._pending, num_returns=len(self._pending))
        self.terminate()

    def __enter__(self) -> "Pool":
        self._check_running()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.terminate()

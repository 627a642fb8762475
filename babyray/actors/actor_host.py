"""Hosting one user actor inside a worker process: its instance and how calls run.

A plain actor runs one call at a time, in arrival order (which is each caller's submission
order). ``max_concurrency=n`` runs up to n calls at once on n threads. A class with any
``async def`` method is an async actor: its coroutine methods run on an event loop thread,
at most ``max_concurrency`` (default 1000, as in Ray) at a time.
"""
from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any, Callable

DEFAULT_ASYNC_CONCURRENCY = 1000


def is_async_class(cls: type) -> bool:
    return any(inspect.iscoroutinefunction(member) for _, member in inspect.getmembers(cls))


class ActorHost:
    """The user actor's instance, made by the constructor task; None until then."""

    def __init__(self, actor_id: str, cls: type, options: dict) -> None:
        self.actor_id = actor_id
        self.cls = cls
        self.instance: Any = None
        self.is_async = is_async_class(cls)
        default = DEFAULT_ASYNC_CONCURRENCY if self.is_async else 1
        self.max_concurrency = int(options.get("max_concurrency") or default)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._limit: asyncio.Semaphore | None = None

    def construct(self, args: list, kwargs: dict) -> None:
        if self.is_async:
            self._start_loop()
        self.instance = self.cls(*args, **kwargs)

    def method(self, name: str) -> Callable:
        return getattr(self.instance, name)

    def executor_threads(self) -> int:
        """How many threads take calls off the worker's queue."""
        return 1 if self.is_async else self.max_concurrency

    def _start_loop(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self._limit = asyncio.Semaphore(self.max_concurrency)
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, name="babyray-actor-loop", daemon=True).start()
        ready.wait()

    def run_coroutine(self, method: Callable, args: list, kwargs: dict,
                      done: Callable[[Any, BaseException | None], None]) -> None:
        """Schedule ``method(*args, **kwargs)`` on the loop; ``done(result, error)`` at the end."""
        async def call() -> None:
            async with self._limit:
                try:
                    result = await method(*args, **kwargs)
                except BaseException as exc:  # reported to the caller, like any method error
                    done(None, exc)
                    return
            done(result, None)

        asyncio.run_coroutine_threadsafe(call(), self.loop)

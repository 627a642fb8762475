"""Hosting one user actor inside a worker process: its instance and how calls run.

A plain actor runs one call at a time, in arrival order (which is each caller's submission
order). ``max_concurrency=n`` runs up to n calls at once on n threads. A class with any
``async def`` method is an async actor: all its methods run on an event loop thread (a
plain method there blocks the loop, as in Ray), at most ``max_concurrency`` (default 1000,
as in Ray) at a time.

Concurrency groups (``concurrency_groups={"io": 2}`` on the class, ``concurrency_group=``
on ``@method`` or on a call's ``.options()``) give the calls of a group their own limit and
their own thread(s): a thread pool of that size in a threaded actor, an event loop thread
in an async actor. Calls of no group run in the default group described above.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from babyray.api import context
from babyray.ids import TaskID
from babyray.protocol import values as vm

Run = Callable[[vm.TaskSpec], None]  # what a worker does with a call: run it, or fail it as cancelled
DEFAULT_ASYNC_CONCURRENCY = 1000
CONCURRENCY_GROUP_ATTR = "__babyray_concurrency_group__"


def is_async_class(cls: type) -> bool:
    return any(inspect.iscoroutinefunction(member) for _, member in inspect.getmembers(cls))


def method_groups(cls: type) -> dict[str, str]:
    """Method name -> the concurrency group ``@method(concurrency_group=...)`` gave it."""
    return {
        name: getattr(member, CONCURRENCY_GROUP_ATTR)
        for name, member in inspect.getmembers(cls, callable)
        if hasattr(member, CONCURRENCY_GROUP_ATTR)
    }


class _Loop:
    """An event loop on its own thread, with the semaphore that limits its calls."""

    def __init__(self, name: str, limit: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.limit = asyncio.Semaphore(limit)  # bound to the loop that first uses it (Python >= 3.10)

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_forever()

        threading.Thread(target=run, name=name, daemon=True).start()


class ActorHost:
    """The user actor's instance, made by the constructor task; None until then.

    Also what ``get_runtime_context()`` tells inside the actor: its id, name, job, the
    resources it holds and whether this is a restart.
    """

    def __init__(self, spec: vm.TaskSpec, cls: type) -> None:
        options = spec.actor_options
        self.actor_id = spec.actor_id
        self.cls = cls
        self.instance: Any = None
        self.name: str = options.get("name") or ""
        self.job_id = spec.job_id
        self.namespace = spec.namespace
        self.resources = dict(spec.resources)
        self.gpu_ids = spec.gpu_ids
        self.facts = context.TaskFacts.of(spec)  # what threads of its own see before any call ran
        self.reconstructed = spec.attempt > 0  # the GCS counts restarts in the creation spec's attempt
        self.is_async = is_async_class(cls)
        default = DEFAULT_ASYNC_CONCURRENCY if self.is_async else 1
        self.max_concurrency = int(options.get("max_concurrency") or default)
        self.groups: dict[str, int] = dict(options.get("concurrency_groups") or {})
        self.method_groups = method_groups(cls)
        self._loops: dict[str | None, _Loop] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._coroutines: dict[
            str, tuple[asyncio.AbstractEventLoop, asyncio.Task]
        ] = {}  # async calls running
        self._cancelled: set[str] = set()  # calls ray.cancel reached before they started or ended
        self._runs_on_loop: dict[str, bool] = {}  # method name -> may run on the worker's loop thread

    def construct(self, args: list, kwargs: dict) -> None:
        if self.is_async:
            self._loops[None] = _Loop("babyray-actor-loop", self.max_concurrency)
            for group, limit in self.groups.items():
                self._loops[group] = _Loop(f"babyray-actor-loop-{group}", limit)
        else:
            for group, limit in self.groups.items():
                self._pools[group] = ThreadPoolExecutor(limit, thread_name_prefix=f"babyray-group-{group}")
        context.set_actor_host(self)
        context.use_gpus(self.gpu_ids)
        self.instance = self.cls(*args, **kwargs)

    def method(self, name: str) -> Callable:
        return getattr(self.instance, name)

    def runs_on_loop_thread(self, spec: vm.TaskSpec) -> bool:
        """Whether the call may run on the worker's loop thread (``LoopHandover``): a plain
        method of a created sync actor that runs one call at a time (a generator method streams
        from the executor thread)."""
        name = spec.method_name
        if name is None or self.instance is None or self.is_async or self.groups or self.max_concurrency != 1:
            return False
        runs = self._runs_on_loop.get(name)
        if runs is None:
            method = getattr(self.instance, name, None)
            runs = self._runs_on_loop[name] = callable(method) and not inspect.isgeneratorfunction(method)
        return runs

    def default_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop of an async actor's default group (None in a threaded actor)."""
        runner = self._loops.get(None)
        return runner.loop if runner is not None else None

    def executor_threads(self) -> int:
        """How many threads take default-group calls off the worker's queue."""
        return 1 if self.is_async else self.max_concurrency

    def group_of(self, spec: vm.TaskSpec) -> str | None:
        """The call's concurrency group (None: the default group)."""
        group = spec.actor_options.get("concurrency_group") or self.method_groups.get(spec.method_name or "")
        return group if group in self.groups else None

    def run_in_group(self, spec: vm.TaskSpec, run: Run, cancelled: Run) -> bool:
        """Hand a threaded actor's call of a concurrency group to the group's thread pool, where
        it waits for a free thread: then ``run(spec)``, or ``cancelled(spec)`` if ray.cancel
        reached it meanwhile (it never runs, as in Ray). False: the call is of no such group."""
        if self.instance is None or spec.method_name is None:
            return False
        pool = self._pools.get(self.group_of(spec) or "")
        if pool is None:
            return False
        pool.submit(self._run_unless_cancelled, spec, run, cancelled)
        return True

    def _run_unless_cancelled(self, spec: vm.TaskSpec, run: Run, cancelled: Run) -> None:
        try:
            (cancelled if spec.task_id in self._cancelled else run)(spec)
        finally:
            self._cancelled.discard(spec.task_id)

    def run_coroutine(
        self,
        spec: vm.TaskSpec,
        method: Callable,
        args: list,
        kwargs: dict,
        done: Callable[[Any, BaseException | None], None],
    ) -> None:
        """Run ``method(*args, **kwargs)`` (awaited if it is a coroutine) on the loop of the
        call's group; ``done(result, error)`` at the end."""
        runner = self._loops[self.group_of(spec)]
        task_id = spec.task_id

        async def call() -> None:
            task = asyncio.current_task()
            assert task is not None, "run as a task of the loop"
            self._coroutines[task_id] = (runner.loop, task)
            context.coroutine_started(spec)
            try:
                if task_id in self._cancelled:
                    raise asyncio.CancelledError()
                async with runner.limit:
                    result = method(*args, **kwargs)
                    if inspect.isawaitable(result):
                        result = await result
            except BaseException as exc:  # reported to the caller, like any method error
                done(None, exc)
                return
            finally:
                self._coroutines.pop(task_id, None)
                self._cancelled.discard(task_id)
            done(result, None)

        asyncio.run_coroutine_threadsafe(call(), runner.loop)

    def cancel(self, task_id: TaskID) -> None:
        """ray.cancel of a call: an async call gets asyncio.CancelledError (at once if it runs, else
        when it starts), as in Ray; a call waiting for a thread of its concurrency group never
        runs. A running sync call is not interrupted (see ``is_canceled()``)."""
        if not self.is_async and not self._pools:
            return  # the worker's queue skips the calls of the default group cancelled there
        self._cancelled.add(task_id)
        running = self._coroutines.get(task_id)
        if running is not None:
            loop, task = running
            loop.call_soon_threadsafe(task.cancel)

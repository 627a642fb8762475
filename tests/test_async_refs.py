"""ObjectRefs in asyncio code, as Ray documents them (AsyncIO / Concurrency for Actors,
"ObjectRefs as asyncio.Futures" and "ObjectRefs as concurrent.futures.Futures")."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest

import babyray as ray


@ray.remote
def square(x):
    return x * x


@ray.remote
def fail(message):
    raise KeyError(message)


@ray.remote
class Signal:
    """An asyncio.Event other tasks and actors can wait on (Ray's actor-sync pattern)."""

    def __init__(self):
        self.event = asyncio.Event()

    def send(self):
        self.event.set()

    async def wait(self):
        await self.event.wait()


@ray.remote
def wait_then(signal, value):
    ray.get(signal.wait.remote())
    return value


@ray.remote
class Awaiter:
    async def await_refs(self, refs):
        return sum(await asyncio.gather(*refs))

    async def await_one(self, boxed):
        return await boxed[0]

    async def ping(self):
        return "pong"


def test_await_ref_and_gather_in_driver(shared_cluster):
    """Ray: 'await object_ref' and 'await asyncio.gather(*object_refs)' work in async driver code."""

    async def main():
        one = await square.remote(7)
        many = await asyncio.gather(*[square.remote(i) for i in range(6)])
        return one, many

    assert asyncio.run(main()) == (49, [0, 1, 4, 9, 16, 25])


def test_awaiting_a_failed_task_raises_its_error(shared_cluster):
    """Ray: awaiting the ref of a task that raised raises the task's error (an instance of the cause)."""

    async def main():
        return await fail.remote("nope")

    with pytest.raises(KeyError) as info:
        asyncio.run(main())
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "nope" in str(info.value)


def test_ref_future_is_a_concurrent_future(shared_cluster):
    """Ray: ref.future() returns a concurrent.futures.Future; asyncio.wrap_future(ref.future()) is awaitable."""
    future = square.remote(9).future()
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=60) == 81
    assert (
        concurrent.futures.wait([square.remote(i).future() for i in range(4)], timeout=60).not_done == set()
    )

    async def main():
        return await asyncio.wrap_future(square.remote(5).future())

    assert asyncio.run(main()) == 25

    failed = fail.remote("boom").future()
    assert isinstance(failed.exception(timeout=60), KeyError)


def test_future_of_a_stored_object_and_of_a_put(shared_cluster):
    """Values too big to inline come from the object store, as ray.get would return them."""
    array = np.arange(200_000, dtype=np.int64)
    ref = ray.put(array)
    assert np.array_equal(ref.future().result(timeout=60), array)

    async def main():
        return await ray.put({"k": [1, 2]})

    assert asyncio.run(main()) == {"k": [1, 2]}


def test_actor_method_calls_are_awaitable(shared_cluster):
    """Ray: 'await actor.method.remote()' gives the call's result (async ray.get)."""
    actor = Awaiter.remote()

    async def main():
        return await actor.ping.remote(), await actor.await_refs.remote([square.remote(2), square.remote(3)])

    assert asyncio.run(main()) == ("pong", 13)


def test_async_actor_awaiting_a_ref_keeps_serving_other_calls(shared_cluster):
    """Ray: awaiting (not ray.get) in an async actor yields control, so other calls run meanwhile."""
    signal = Signal.remote()
    actor = Awaiter.remote()
    slow = wait_then.remote(signal, 42)
    waiting = actor.await_one.remote([slow])
    for _ in range(3):
        assert ray.get(actor.ping.remote(), timeout=60) == "pong"
    ready, _ = ray.wait([waiting], timeout=0.5)
    assert ready == []
    ray.get(signal.send.remote())
    assert ray.get(waiting, timeout=60) == 42


def test_await_inside_a_task(shared_cluster):
    """Async code inside a task (asyncio.run) awaits refs of tasks it submits."""

    @ray.remote
    def parent(n):
        async def main():
            return await asyncio.gather(*[square.remote(i) for i in range(n)])

        return asyncio.run(main())

    assert ray.get(parent.remote(5), timeout=120) == [0, 1, 4, 9, 16]


def test_plain_method_of_an_async_actor_wakes_its_coroutines(shared_cluster):
    """Ray's actor-sync pattern: a plain method (send) of an async actor sets an asyncio.Event
    that its coroutines (wait) await; the waiting tasks then go on. Plain methods of an async
    actor run on its event loop."""
    signal = Signal.remote()
    waiters = [wait_then.remote(signal, i) for i in range(3)]
    assert ray.wait(waiters, num_returns=3, timeout=0.5)[0] == []
    ray.get(signal.send.remote(), timeout=30)
    assert ray.get(waiters, timeout=30) == [0, 1, 2]


def test_no_resolver_thread_outlives_its_work(shared_cluster):
    """Futures are completed by a thread that ends when idle, so none is left after shutdown."""
    assert square.remote(3).future().result(timeout=60) == 9
    deadline = time.monotonic() + 10
    while any(t.name == "babyray-ref-futures" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(t.name == "babyray-ref-futures" for t in threading.enumerate())
    assert asyncio.run(_await(square.remote(4))) == 16  # and a new one starts for new work


async def _await(ref):
    return await ref

"""Generator tasks and actor methods through the public API, as Ray documents them.

Ray's docs: "Ray Generators" (streaming ``ObjectRefGenerator``, the default for a remote
function or actor method that yields), "Dynamic generators" (``num_returns="dynamic"`` and
``num_returns=k`` with a generator). Tasks that must be caught mid-stream wait for a gate
file the test creates, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest
from conftest import wait_for_file

import babyray as ray
from babyray.exceptions import (
    GetTimeoutError,
    RayActorError,
    RayTaskError,
    TaskCancelledError,
    WorkerCrashedError,
)


@ray.remote
def count_to(n):
    for i in range(n):
        yield i * 10


@ray.remote
def yield_then_wait(gate, n):
    """Yields 0 at once; the rest only after ``gate`` exists."""
    yield 0
    wait_for_file(gate)
    for i in range(1, n):
        yield i


@ray.remote
def two_then_raise():
    yield 1
    yield 2
    raise ValueError("generator failed after two values")


@ray.remote
def yield_forever(progress_dir):
    i = 0
    while True:
        open(os.path.join(progress_dir, f"{i:06d}"), "w").close()
        yield i
        i += 1
        time.sleep(0.05)


@ray.remote
def sum_of_generator_task(n):
    """Runs on a worker: iterates another generator task's output (the worker owns it)."""
    gen = count_to.remote(n)
    return sum(ray.get(ref) for ref in gen)


@ray.remote
def sizes_of(chunks):
    return [len(ray.get(ref)) for ref in chunks]


@ray.remote(num_returns="dynamic")
def split(array, chunk):
    while len(array):
        yield array[:chunk]
        array = array[chunk:]


def test_a_generator_task_returns_an_object_ref_generator_of_its_values_in_order(shared_cluster):
    """Docs: any generator function decorated with ray.remote becomes a generator task; iterating
    the returned ObjectRefGenerator gives one ObjectRef per yield; next raises StopIteration at the end."""
    gen = count_to.remote(4)
    assert isinstance(gen, ray.ObjectRefGenerator)
    first = next(gen)
    assert isinstance(first, ray.ObjectRef)
    assert ray.get(first, timeout=30) == 0
    assert [ray.get(ref, timeout=30) for ref in gen] == [10, 20, 30]
    with pytest.raises(StopIteration):
        next(gen)
    assert ray.get(gen.completed(), timeout=30) == 4


def test_values_arrive_before_the_generator_task_finishes(shared_cluster, tmp_path):
    """Docs: "Generator tasks stream outputs back to the caller before the task finishes";
    next blocks until the task yields the next value."""
    gate = str(tmp_path / "gate")
    gen = yield_then_wait.remote(gate, 3)
    first = gen._next_sync(timeout_s=60)
    assert ray.get(first, timeout=30) == 0
    ready, _ = ray.wait([gen.completed()], timeout=0.5)
    assert ready == [], "the task is still waiting for the gate"
    with pytest.raises(GetTimeoutError):
        gen._next_sync(timeout_s=0.3)  # the next value does not exist yet
    open(gate, "w").close()
    assert [ray.get(ref, timeout=30) for ref in gen] == [1, 2]


def test_an_exception_surfaces_at_the_next_item_then_the_generator_stops(shared_cluster):
    """Docs (Error handling): an application exception after the second yield makes the third
    next(gen) return a ref that raises it on get; after that next raises StopIteration."""
    gen = two_then_raise.remote()
    assert ray.get(next(gen), timeout=30) == 1
    assert ray.get(next(gen), timeout=30) == 2
    failed = next(gen)
    with pytest.raises(ValueError, match="generator failed after two values") as info:
        ray.get(failed, timeout=30)
    assert isinstance(info.value, RayTaskError)
    with pytest.raises(StopIteration):
        next(gen)
    with pytest.raises(ValueError):
        ray.get(gen.completed(), timeout=30)


def test_ray_wait_finds_a_generator_ready_only_when_its_next_value_exists(shared_cluster, tmp_path):
    """Docs (ray.wait): a generator is in the ready list when the reference next(gen) returns has
    its object available; ray.wait can mix generators and refs, preserving input order."""
    gate = str(tmp_path / "gate")
    gen = yield_then_wait.remote(gate, 2)
    ready, not_ready = ray.wait([gen], timeout=60)
    assert ready == [gen] and not_ready == []
    assert ray.get(next(gen), timeout=30) == 0
    ready, not_ready = ray.wait([gen], timeout=0.5)
    assert ready == [] and not_ready == [gen], "value 1 waits for the gate"
    done = count_to.remote(1)
    plain = ray.put("x")
    ready, not_ready = ray.wait([gen, plain], num_returns=2, timeout=0.5)
    assert ready == [plain] and not_ready == [gen]
    open(gate, "w").close()
    ready, not_ready = ray.wait([gen, plain], num_returns=2, timeout=60)
    assert ready == [gen, plain] and not_ready == []
    assert ray.get(next(gen), timeout=30) == 1
    ready, _ = ray.wait([gen], timeout=60)  # the end is ready too: next raises StopIteration at once
    assert ready == [gen]
    with pytest.raises(StopIteration):
        next(gen)
    assert [ray.get(r, timeout=30) for r in done] == [0]


def test_async_for_over_a_generator(shared_cluster):
    """Docs (Using the Ray generator with asyncio): the generator supports async for."""

    async def consume():
        values = []
        async for ref in count_to.remote(3):
            values.append(ray.get(ref, timeout=30))
        return values

    assert asyncio.run(consume()) == [0, 10, 20]


def test_get_and_passing_a_generator_are_refused_with_a_clear_error(shared_cluster):
    """Docs: using ray.get on an ObjectRefGenerator isn't allowed; passing it to another task or
    actor is a documented limitation."""
    gen = count_to.remote(2)
    with pytest.raises(TypeError, match="ObjectRefGenerator"):
        ray.get(gen)
    with pytest.raises(TypeError, match="ObjectRefGenerator"):
        sizes_of.remote(gen)
    assert [ray.get(r, timeout=30) for r in gen] == [0, 10]
    assert ray.get(count_to.remote(0).completed(), timeout=30) == 0


def test_a_task_iterates_a_generator_task_it_submitted(shared_cluster):
    """Docs: generator tasks work from any caller; here a worker owns and iterates one."""
    assert ray.get(sum_of_generator_task.remote(5), timeout=60) == 100


def test_num_returns_dynamic_gives_a_ref_to_a_dynamic_object_ref_generator(shared_cluster):
    """Docs (Dynamic generators): num_returns="dynamic" returns a single ObjectRef populated with
    a DynamicObjectRefGenerator when the task completes; it can be passed to another task."""
    array = np.arange(2500)
    ref = split.remote(array, 1000)
    assert isinstance(ref, ray.ObjectRef)
    chunks = ray.get(ref, timeout=60)
    assert isinstance(chunks, ray.DynamicObjectRefGenerator)
    assert [len(ray.get(r, timeout=30)) for r in chunks] == [1000, 1000, 500]
    assert np.array_equal(np.concatenate([ray.get(r) for r in chunks]), array)
    assert ray.get(sizes_of.remote(ref), timeout=60) == [1000, 1000, 500]


def test_a_dynamic_generator_stores_its_exception_as_the_final_ref(shared_cluster):
    """Docs (Exception handling): with num_returns="dynamic" the exception is stored as an
    additional final ObjectRef; the values stored before it stay readable."""
    refs = list(ray.get(two_then_raise.options(num_returns="dynamic").remote(), timeout=60))
    assert len(refs) == 3
    assert ray.get(refs[:2], timeout=30) == [1, 2]
    with pytest.raises(ValueError, match="generator failed"):
        ray.get(refs[2], timeout=30)


def test_num_returns_k_with_a_generator_gives_k_refs(shared_cluster):
    """Docs (num_returns set by the task caller): a generator yielding num_returns values gives
    that many refs; if it raises early, the stored values stay readable and the rest raise."""
    a, b, c = count_to.options(num_returns=3).remote(3)
    assert ray.get([a, b, c], timeout=60) == [0, 10, 20]
    r1, r2, r3, r4 = two_then_raise.options(num_returns=4).remote()
    assert ray.get([r1, r2], timeout=60) == [1, 2]
    for ref in (r3, r4):
        with pytest.raises(ValueError, match="generator failed"):
            ray.get(ref, timeout=30)


def test_num_returns_k_with_a_generator_yielding_another_count(shared_cluster):
    """Docs: "An error will be raised for generators that yield a different number of values
    from the one specified by the caller." Too few: the missing refs raise Ray's ValueError. Too
    many, or an exception after the k-th value: the page's known bug, the error is only logged
    and the k refs hold the first k values."""
    first, second, third = count_to.options(num_returns=3).remote(2)
    assert ray.get([first, second], timeout=60) == [0, 10]
    with pytest.raises(ValueError, match=r"Task returned 2 objects, but num_returns=3\."):
        ray.get(third, timeout=30)
    first, second = count_to.options(num_returns=2).remote(3)
    assert ray.get([first, second], timeout=60) == [0, 10]
    first, second = two_then_raise.options(num_returns=2).remote()
    assert ray.get([first, second], timeout=60) == [1, 2]


def test_cancel_stops_a_running_generator(shared_cluster, tmp_path):
    """Docs (Cancellation): ray.cancel works with generator tasks; next(gen) then gives a ref
    containing TaskCancelledError. The generator stops yielding."""
    gen = yield_forever.remote(str(tmp_path))
    for expected in range(3):
        assert ray.get(next(gen), timeout=60) == expected
    ray.cancel(gen)
    values = []
    with pytest.raises(TaskCancelledError):
        for ref in gen:
            values.append(ray.get(ref, timeout=60))
    assert values == list(range(3, 3 + len(values)))
    with pytest.raises(StopIteration):
        next(gen)
    produced = len(os.listdir(tmp_path))
    time.sleep(0.5)
    assert len(os.listdir(tmp_path)) == produced, "the generator kept running after cancel"


@ray.remote(max_retries=2)
def crash_once_midway(marker_dir):
    """Yields 0 and 1, then the first attempt kills its own worker; a retry yields 0..3."""
    attempt = len(os.listdir(marker_dir))
    open(os.path.join(marker_dir, f"attempt-{attempt}"), "w").close()
    for i in range(4):
        if i == 2 and attempt == 0:
            os._exit(1)
        yield i


@ray.remote(retry_exceptions=True)
def raise_once_midway(marker_dir):
    attempt = len(os.listdir(marker_dir))
    open(os.path.join(marker_dir, f"attempt-{attempt}"), "w").close()
    for i in range(4):
        if i == 2 and attempt == 0:
            raise ConnectionError("transient")
        yield i


def test_a_generator_task_whose_worker_dies_is_retried_and_each_value_comes_once(shared_cluster, tmp_path):
    """Docs (Fault tolerance): max_retries works with generator tasks; the caller sees every
    value once, in order, although the first attempt's values came before the crash."""
    gen = crash_once_midway.remote(str(tmp_path))
    assert [ray.get(ref, timeout=60) for ref in gen] == [0, 1, 2, 3]
    assert sorted(os.listdir(tmp_path)) == ["attempt-0", "attempt-1"]


def test_retry_exceptions_retries_a_generator_task_that_raised(shared_cluster, tmp_path):
    """Docs (Fault tolerance): retry_exceptions works with generator tasks."""
    gen = raise_once_midway.remote(str(tmp_path))
    assert [ray.get(ref, timeout=60) for ref in gen] == [0, 1, 2, 3]
    assert len(os.listdir(tmp_path)) == 2


def test_a_system_error_is_the_next_item_of_the_stream(shared_cluster, tmp_path):
    """Docs (Error handling): if a system error (a worker process failure) fails the task,
    next(gen) returns a ref containing the system-level exception ("at any time without an
    ordering guarantee": values yielded just before the crash may be lost); then the stream ends."""
    *values, crashed = crash_once_midway.options(max_retries=0).remote(str(tmp_path))
    assert ray.get(values, timeout=60) == [0, 1][: len(values)]
    with pytest.raises(WorkerCrashedError):
        ray.get(crashed, timeout=60)
    actor = Streamer.remote()
    gate = str(tmp_path / "gate")
    stream = actor.until_gate.remote(gate)
    assert ray.get(next(stream), timeout=60) == "before the gate"
    ray.kill(actor)
    with pytest.raises(RayActorError):
        ray.get(next(stream), timeout=60)
    with pytest.raises(StopIteration):
        next(stream)


@ray.remote
class Streamer:
    def __init__(self):
        self.sent = 0

    def numbers(self, n):
        for i in range(n):
            self.sent += 1
            yield i

    def until_gate(self, gate):
        yield "before the gate"
        wait_for_file(gate)
        yield "after the gate"

    def total_sent(self):
        return self.sent

    @ray.method(num_returns=2)
    def pair(self):
        yield "a"
        yield "b"


@ray.remote
class AsyncStreamer:
    async def numbers(self, n):
        for i in range(n):
            await asyncio.sleep(0.01)
            yield i

    def plain(self, n):
        for i in range(n):
            yield -i

    async def until_released(self):
        self.released = asyncio.Event()
        yield "waiting"
        await self.released.wait()
        yield "released"

    async def release(self):
        self.released.set()
        return "ok"


def test_an_async_actor_runs_other_calls_while_its_async_generator_waits(shared_cluster):
    """Docs: Ray generators work with async actors, whose calls run concurrently on the event
    loop: a call that releases a waiting async generator method runs while it waits."""
    actor = AsyncStreamer.remote()
    gen = actor.until_released.remote()
    assert ray.get(next(gen), timeout=60) == "waiting"
    assert ray.get(actor.release.remote(), timeout=60) == "ok"
    assert [ray.get(r, timeout=60) for r in gen] == ["released"]
    dynamic = ray.get(actor.numbers.options(num_returns="dynamic").remote(2), timeout=60)
    assert [ray.get(r, timeout=30) for r in dynamic] == [0, 1]
    one, two = actor.numbers.options(num_returns=2).remote(2)
    assert ray.get([one, two], timeout=60) == [0, 1]


def test_actor_methods_that_yield_stream_their_values(shared_cluster):
    """Docs (Generator from Actor Tasks): generators work in regular, threaded and async actors;
    @ray.method(num_returns=k) on a generator method gives k refs."""
    actor = Streamer.remote()
    gen = actor.numbers.remote(3)
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert [ray.get(r, timeout=60) for r in gen] == [0, 1, 2]
    assert ray.get(actor.total_sent.remote(), timeout=30) == 3
    assert ray.get(list(actor.pair.remote()), timeout=30) == ["a", "b"]
    threaded = Streamer.options(max_concurrency=4).remote()
    assert [ray.get(r, timeout=60) for r in threaded.numbers.remote(2)] == [0, 1]
    async_actor = AsyncStreamer.remote()
    assert [ray.get(r, timeout=60) for r in async_actor.numbers.remote(3)] == [0, 1, 2]
    assert [ray.get(r, timeout=60) for r in async_actor.plain.remote(3)] == [0, -1, -2]
    dynamic = ray.get(actor.numbers.options(num_returns="dynamic").remote(2), timeout=60)
    assert [ray.get(r, timeout=30) for r in dynamic] == [0, 1]


def test_bad_num_returns_is_refused(shared_cluster):
    """A num_returns that is neither a count, "streaming" nor "dynamic" fails clearly; a plain
    function called with num_returns="dynamic" fails when it returns no generator."""
    with pytest.raises(ValueError, match="num_returns"):
        count_to.options(num_returns="lots").remote(1)

    @ray.remote(num_returns="dynamic")
    def not_a_generator():
        return 1

    with pytest.raises(TypeError, match="generator"):
        ray.get(not_a_generator.remote(), timeout=60)
    assert [ray.get(r, timeout=30) for r in count_to.options(num_returns="streaming").remote(2)] == [0, 10]
    with pytest.raises(ValueError, match="num_returns"):
        Streamer.remote().numbers.options(num_returns="lots")
    with pytest.raises(ValueError, match="num_returns"):
        ray.method(num_returns=-1)

"""ray.util.queue.Queue, checked against Ray's documented behaviour (ray.util.queue.Queue API page
and 'Message passing using Ray Queue')."""

from __future__ import annotations

import asyncio
import queue as std_queue
import time

import pytest

import babyray as ray
from babyray.util.queue import Empty, Full, Queue


def test_fifo_put_get_and_sizes(shared_cluster):
    """Ray: a first-in, first-out queue; qsize/size/len/empty/full report its state."""
    assert ray.util.queue.Queue is Queue and ray.util.queue.Empty is Empty  # reachable as in Ray
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and q.qsize() == 0
    for item in ("a", {"b": 1}, [3]):
        q.put(item)
    assert q.full() and q.size() == 3 and len(q) == 3
    assert [q.get(), q.get(), q.get()] == ["a", {"b": 1}, [3]]
    assert q.empty()
    q.shutdown()


def test_nonblocking_and_timeouts_raise_empty_and_full(shared_cluster):
    """Ray: Empty/Full when non-blocking on an empty/full queue, or when a blocking call times out."""
    assert issubclass(Empty, std_queue.Empty) and issubclass(Full, std_queue.Full)
    q = Queue(maxsize=1)
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    assert time.monotonic() - start >= 0.3
    q.put_nowait(1)
    with pytest.raises(Full):
        q.put_nowait(2)
    with pytest.raises(Full):
        q.put(2, timeout=0.2)
    with pytest.raises(ValueError):
        q.put(2, timeout=-1)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    assert q.get_nowait() == 1
    q.shutdown()


def test_batches_are_all_or_nothing(shared_cluster):
    """Ray: put_nowait_batch raises Full if the items will not fit; get_nowait_batch raises Empty
    if the queue does not hold the number asked; otherwise both keep order."""
    q = Queue(maxsize=4)
    q.put_nowait_batch([1, 2, 3])
    with pytest.raises(Full):
        q.put_nowait_batch([4, 5])
    assert q.qsize() == 3
    with pytest.raises(Empty):
        q.get_nowait_batch(4)
    assert q.get_nowait_batch(2) == [1, 2]
    assert q.get_nowait_batch(0) == []
    with pytest.raises(TypeError):
        q.put_nowait_batch(7)
    with pytest.raises(TypeError):
        q.get_nowait_batch("1")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)
    assert q.get() == 3
    q.shutdown()


@ray.remote
def consume(q, count):
    return [q.get(timeout=60) for _ in range(count)]


@ray.remote
class Producer:
    def produce(self, q, items):
        for item in items:
            q.put(item)
        return len(items)


def test_queue_passed_to_tasks_and_actors(shared_cluster):
    """Ray: 'You can pass this object around to different tasks/actors' - they share one queue."""
    q = Queue(maxsize=2)  # the producer must wait for the consumer: a blocked put waits in the actor
    consumer = consume.remote(q, 6)
    producer = Producer.remote()
    assert ray.get(producer.produce.remote(q, list(range(6))), timeout=120) == 6
    assert ray.get(consumer, timeout=120) == list(range(6))
    q.shutdown()


def test_blocked_get_is_woken_by_a_later_put(shared_cluster):
    """Ray: get(block=True) on an empty queue blocks until an item arrives."""
    q = Queue()
    waiting = consume.remote(q, 1)
    time.sleep(0.5)
    assert ray.wait([waiting], timeout=0)[0] == []
    q.put("late")
    assert ray.get(waiting, timeout=60) == ["late"]
    q.shutdown()


def test_async_put_and_get(shared_cluster):
    """Ray: put_async/get_async for asyncio code."""
    q = Queue()

    async def main():
        await q.put_async(5)
        return await q.get_async(timeout=30)

    assert asyncio.run(main()) == 5
    q.shutdown()


def test_shutdown_stops_the_actor_and_actor_options_apply(shared_cluster):
    """Ray: shutdown() terminates the queue actor, releasing its resources; actor_options go to
    the actor's .options() (e.g. resources)."""
    before = ray.available_resources().get("custom", 0)
    q = Queue(actor_options={"resources": {"custom": 1}})
    q.put(1)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("custom", 0) != before - 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("custom", 0) == before - 1
    handle = q.actor
    q.shutdown()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(handle.qsize.remote(), timeout=60)
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(2)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("custom", 0) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("custom", 0) == before
    with pytest.raises(ValueError):
        Queue(actor_options={"bogus": 1})

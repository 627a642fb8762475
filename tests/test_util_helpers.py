"""``ray.util.as_completed`` and ``ray.util.map_unordered``: results in the order their tasks
finish, a chunk (``wait``'s ``num_returns``) at a time, with at most ``backpressure_size``
tasks in flight."""

from __future__ import annotations

import time

import pytest

import babyray as ray

TIMEOUT = 60


@ray.remote(num_cpus=0)
class Gates:
    """Tasks wait at gate ``x`` until the test opens it; counts the tasks inside at once."""

    def __init__(self) -> None:
        self.open: set = set()
        self.inside = 0
        self.most_inside = 0

    def opened(self, x) -> bool:
        return x in self.open

    def release(self, x) -> None:
        self.open.add(x)

    def enter(self) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)

    def leave(self) -> None:
        self.inside -= 1

    def most(self) -> int:
        return self.most_inside


@ray.remote
def gated(gates, x):
    while not ray.get(gates.opened.remote(x)):
        time.sleep(0.01)
    return x


@ray.remote
def counted(x):
    """Sleeps a little inside the gates named ``counter``, counted."""
    gates = ray.get_actor("counter")
    ray.get(gates.enter.remote())
    time.sleep(0.2)
    ray.get(gates.leave.remote())
    return x * 10


def test_as_completed_yields_chunks_in_the_order_they_finish(shared_cluster):
    gates = Gates.remote()
    refs = [gated.remote(gates, x) for x in (10, 4, 6, 8, 2)]
    results = ray.util.as_completed(refs, chunk_size=2, timeout=TIMEOUT)
    ray.get([gates.release.remote(2), gates.release.remote(4)])
    assert [next(results), next(results)] == [4, 2]  # a chunk keeps the order of submission
    ray.get([gates.release.remote(8), gates.release.remote(6)])
    assert [next(results), next(results)] == [6, 8]
    ray.get(gates.release.remote(10))
    assert list(results) == [10]
    as_refs = list(ray.util.as_completed(refs, chunk_size=3, yield_obj_refs=True))
    assert sorted(as_refs, key=refs.index) == refs


def test_map_unordered_keeps_at_most_backpressure_size_tasks_in_flight(shared_cluster):
    items = list(range(6))
    most = {}
    for backpressure_size in (1, None):
        gates = Gates.options(name="counter").remote()
        results = ray.util.map_unordered(
            counted, items, backpressure_size=backpressure_size, chunk_size=1, timeout=TIMEOUT
        )
        assert sorted(results) == [x * 10 for x in items]
        most[backpressure_size] = ray.get(gates.most.remote(), timeout=TIMEOUT)
        ray.kill(gates)
    assert most[1] == 1 and most[None] >= 2, most  # unbounded, both CPUs (and lent ones) run them
    refs = list(ray.util.map_unordered(counted_free, items, yield_obj_refs=True))
    assert sorted(ray.get(refs, timeout=TIMEOUT)) == [x * 10 for x in items]


@ray.remote
def counted_free(x):
    return x * 10


def test_chunk_and_backpressure_sizes_below_one_are_refused(shared_cluster):
    with pytest.raises(ValueError, match="chunk_size"):
        next(ray.util.as_completed([ray.put(1)], chunk_size=0))
    with pytest.raises(ValueError, match="backpressure_size"):
        next(ray.util.map_unordered(gated, [1], backpressure_size=0))

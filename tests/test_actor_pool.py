"""ray.util.ActorPool, checked against Ray's documented behaviour (ray.util.ActorPool API page)."""

from __future__ import annotations

import time

import pytest

import babyray as ray
from babyray.util import ActorPool


@ray.remote
class Doubler:
    def double(self, v):
        return 2 * v

    def slow_double(self, v):
        time.sleep(v)
        return 2 * v

    def pid(self, _):
        import os

        return os.getpid()


@pytest.fixture(scope="module")
def actors(shared_cluster):
    return [Doubler.remote(), Doubler.remote()]


def test_map_returns_results_in_order(actors):
    """Ray: map() 'returns an ordered iterator that will return results of the map as they finish'."""
    pool = ActorPool(actors)
    assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4, 5])) == [2, 4, 6, 8, 10]
    # The work is spread over both actors.
    pids = set(pool.map(lambda a, v: a.pid.remote(v), range(6)))
    assert len(pids) == 2


def test_map_unordered_yields_fastest_first(actors):
    """Ray: map_unordered returns results as they finish, not in submission order."""
    pool = ActorPool(actors)
    results = list(pool.map_unordered(lambda a, v: a.slow_double.remote(v), [1.5, 0.01]))
    assert results == [0.02, 3.0]


def test_submit_get_next_and_has_next(actors):
    """Ray: submit() schedules one value; get_next() returns results in submission order; has_next()."""
    pool = ActorPool(actors)
    assert not pool.has_next()
    for v in (1, 2, 3):  # three values on two actors: one waits for a free actor
        pool.submit(lambda a, v: a.double.remote(v), v)
    assert pool.has_next()
    assert [pool.get_next(), pool.get_next(), pool.get_next()] == [2, 4, 6]
    assert not pool.has_next()
    with pytest.raises(StopIteration):
        pool.get_next()


def test_get_next_timeout_raises_timeout_error(actors):
    """Ray: get_next(timeout=) raises TimeoutError if the result is not ready in time; it stays pending."""
    pool = ActorPool(actors)
    pool.submit(lambda a, v: a.slow_double.remote(v), 2)
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.1)
    assert pool.has_next()
    assert pool.get_next(timeout=60) == 4


def test_get_next_unordered_and_then_get_next_is_refused(actors):
    """Ray: get_next_unordered returns any ready result; get_next() after it raises ValueError."""
    pool = ActorPool(actors)
    pool.submit(lambda a, v: a.slow_double.remote(v), 1.0)
    pool.submit(lambda a, v: a.slow_double.remote(v), 0.01)
    assert pool.get_next_unordered(timeout=60) == 0.02
    with pytest.raises(ValueError):
        pool.get_next()
    assert pool.get_next_unordered(timeout=60) == 2.0
    with pytest.raises(TimeoutError):
        pool.submit(lambda a, v: a.slow_double.remote(v), 2)
        pool.get_next_unordered(timeout=0.1)
    assert pool.get_next_unordered() == 4


def test_has_free_pop_idle_push(actors):
    """Ray: has_free() (idle actor and no pending submit), pop_idle() (None when busy), push()."""
    a1, a2 = actors
    pool = ActorPool([a1])
    assert pool.has_free()
    pool.submit(lambda a, v: a.double.remote(v), 1)
    assert not pool.has_free()
    assert pool.pop_idle() is None
    assert pool.get_next() == 2
    assert pool.has_free()
    assert pool.pop_idle() == a1
    assert not pool.has_free()
    pool.push(a2)
    with pytest.raises(ValueError):
        pool.push(a2)
    pool.submit(lambda a, v: a.pid.remote(v), 0)
    assert pool.get_next() == ray.get(a2.pid.remote(0))


def test_push_takes_a_waiting_value(actors):
    """A value submitted while no actor is free runs as soon as an actor is pushed."""
    a1, _ = actors
    pool = ActorPool([])
    pool.submit(lambda a, v: a.double.remote(v), 21)
    assert not pool.has_next()  # nothing runs without an actor
    pool.push(a1)
    assert pool.get_next(timeout=60) == 42


def test_fn_must_return_an_object_ref(actors):
    """Bad input: fn that does not return a ref gets a clear error; the actor stays in the pool."""
    pool = ActorPool(actors)
    with pytest.raises(TypeError, match="ObjectRef"):
        pool.submit(lambda a, v: v, 1)
    assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2])) == [2, 4]

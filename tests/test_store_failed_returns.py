"""A task that fails after some of its returns were written into the store leaves none of
them there: once its refs are dropped, the store is empty again.

The store copies are made by the worker before the task's result is known; a failure that
comes after (a later return that does not serialize, the worker dying while it stores the
next one) turns every return into an error at the owner, which frees nothing in a store.
"""

from __future__ import annotations

import gc
import os
import threading

import numpy as np
import pytest
from conftest import eventually

import babyray as ray

MB = 1024 * 1024


class DiesWhenPickled:
    """A return value whose serialization kills the worker (after the previous return was stored)."""

    def __reduce__(self):
        os._exit(3)


def _store_empty() -> bool:
    gc.collect()
    stats = ray.memory_stats()[0]
    return stats["num_objects"] == 0 and stats["used_bytes"] == 0


@ray.remote(num_returns=2)
def big_then_unpicklable():
    return np.ones(MB, dtype=np.uint8), threading.Lock()


@ray.remote(num_returns=2, max_retries=0)
def big_then_death():
    return np.ones(MB, dtype=np.uint8), DiesWhenPickled()


@ray.remote(num_returns=2)
def big_pair():
    return np.ones(MB, dtype=np.uint8), np.zeros(MB, dtype=np.uint8)


def test_a_return_that_does_not_serialize_frees_the_returns_stored_before_it(cluster):
    assert _store_empty()
    first, second = big_then_unpicklable.remote()
    for ref in (first, second):
        with pytest.raises(ray.exceptions.RayTaskError, match="pickle"):
            ray.get(ref)
    del first, second
    assert eventually(_store_empty), ray.memory_stats(objects=True)


def test_a_worker_that_dies_storing_a_return_leaves_no_earlier_return_in_the_store(cluster):
    first, second = big_then_death.remote()
    for ref in (first, second):
        with pytest.raises(ray.exceptions.WorkerCrashedError):
            ray.get(ref)
    del first, second
    assert eventually(_store_empty), ray.memory_stats(objects=True)
    # The node goes on: a task with two large returns after it stores and frees them.
    first, second = big_pair.remote()
    assert ray.get(first).sum() == MB and ray.get(second).sum() == 0
    del first, second
    assert eventually(_store_empty), ray.memory_stats(objects=True)

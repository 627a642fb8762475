"""Reference counting: objects are freed when their last ObjectRef is gone, never before."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

import babyray as ray

MB = 1024 * 1024


def _store() -> dict:
    return ray.memory_stats()[0]


def _wait_for(predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        stats = _store()
        if predicate(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


@ray.remote
def read_nested_later(box, delay):
    time.sleep(delay)
    return float(ray.get(box[0]).sum())


@ray.remote
def put_and_return_inside_a_list(n):
    return [ray.put(np.full(n, 3.0))]


@pytest.fixture
def empty_store(shared_cluster):
    """The shared cluster, once everything earlier tests held is freed."""
    gc.collect()
    stats = _wait_for(lambda s: s["num_objects"] == 0)
    assert stats["num_objects"] == 0, stats
    return shared_cluster


def test_store_bytes_go_back_down_when_the_last_ref_is_dropped(empty_store):
    ref = ray.put(np.ones(2 * MB))
    assert _store()["used_bytes"] >= 16 * MB
    copy = ref  # a second instance: dropping one of them frees nothing
    del ref
    time.sleep(0.2)
    assert _store()["num_objects"] == 1
    del copy
    stats = _wait_for(lambda s: s["used_bytes"] == 0)
    assert stats["used_bytes"] == 0 and stats["num_objects"] == 0


def test_a_dropped_refs_slot_is_reused_without_spilling(empty_store):
    for i in range(8):  # 8 x 64 MB through a 256 MB store
        ref = ray.put(np.full(8 * MB, float(i)))
        assert ray.get(ref)[0] == float(i)
        del ref
    stats = _wait_for(lambda s: s["used_bytes"] == 0)
    assert stats["num_spilled"] == 0 and stats["used_bytes"] == 0


def test_refs_inside_a_put_container_keep_their_objects_alive(empty_store):
    inner = ray.put(np.arange(MB, dtype=np.int64))
    outer = ray.put([inner])
    del inner
    time.sleep(0.3)
    gc.collect()
    assert _store()["num_objects"] == 1
    assert np.array_equal(ray.get(ray.get(outer)[0]), np.arange(MB, dtype=np.int64))
    del outer
    assert _wait_for(lambda s: s["num_objects"] == 0)["num_objects"] == 0


def test_refs_nested_in_task_arguments_live_until_the_task_has_read_them(empty_store):
    ref = read_nested_later.remote([ray.put(np.ones(MB))], 0.5)  # the driver keeps no ref of its own
    gc.collect()
    assert ray.get(ref) == float(MB)
    del ref
    assert _wait_for(lambda s: s["num_objects"] == 0)["num_objects"] == 0


def test_a_ref_returned_inside_a_task_result_stays_alive(empty_store):
    box = ray.get(put_and_return_inside_a_list.remote(MB))
    time.sleep(0.3)
    gc.collect()
    assert float(ray.get(box[0]).sum()) == 3.0 * MB
    del box
    assert _wait_for(lambda s: s["num_objects"] == 0)["num_objects"] == 0


def test_a_value_from_get_stays_intact_after_its_ref_is_dropped(empty_store):
    ref = ray.put(np.full(4 * MB, 7, dtype=np.int64))
    value = ray.get(ref)
    del ref
    time.sleep(0.2)
    for _ in range(6):  # churn the store: a freed slot would be overwritten now
        churn = ray.put(np.zeros(4 * MB, dtype=np.int64))
        del churn
    assert _store()["num_pinned"] == 1
    assert (value == 7).all()
    del value
    assert _wait_for(lambda s: s["num_objects"] == 0)["num_objects"] == 0


@ray.remote
def make_array(n):
    return np.ones(n)


def test_unreferenced_task_results_are_freed_when_they_arrive(empty_store):
    make_array.remote(MB)  # nobody keeps the ref
    time.sleep(1.0)
    assert _wait_for(lambda s: s["num_objects"] == 0)["num_objects"] == 0

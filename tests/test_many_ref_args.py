"""Tasks and actor calls with many ObjectRef arguments whose values live in the node's store:
the worker pins them together, reads the right value for each, and unpins every one."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_session_clean
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.api.memory import memory_stats

N_ARGS = 2000


@ray.remote
def first_items(*arrays: np.ndarray, **named: np.ndarray) -> list:
    return [float(a[0]) for a in arrays] + [float(named[k][0]) for k in sorted(named)]


@ray.remote
def put_in_worker(start: int, count: int) -> list:
    return [ray.put(np.full(64, float(i))) for i in range(start, start + count)]


def _refuse_to_rebuild() -> None:
    raise ValueError("cannot be rebuilt")


class Unloadable:
    """Pickles fine; unpickling it raises."""

    def __reduce__(self) -> tuple:
        return _refuse_to_rebuild, ()


@ray.remote
class Summer:
    def __init__(self, *arrays: np.ndarray) -> None:
        self.base = sum(float(a[0]) for a in arrays)

    def add(self, *arrays: np.ndarray) -> float:
        return self.base + sum(float(a[0]) for a in arrays)


@pytest.fixture(scope="module")
def small_inline_cluster(tmp_path_factory):
    """Values over 256 bytes go to the store, so small arrays are stored objects (the driver
    reads the threshold from the environment, as the processes it starts do)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BABYRAY_INLINE_THRESHOLD", "256")
        info = ray.init(
            num_cpus=2, temp_dir=str(tmp_path_factory.mktemp("refs")), object_store_memory=128 * 1024 * 1024
        ).address_info
        try:
            yield info
        finally:
            ray.shutdown()
    assert_session_clean(info["session_dir"])


def _pins() -> int:
    return sum(obj["pins"] for store in memory_stats(objects=True) for obj in store["objects"].values())


def test_a_task_with_thousands_of_stored_ref_arguments_gets_each_value(small_inline_cluster):
    refs = [ray.put(np.full(64, float(i))) for i in range(N_ARGS)]
    assert memory_stats()[0]["num_objects"] >= N_ARGS  # in the store, not inline
    named = {"a": refs[7], "b": ray.put(np.full(64, -1.0))}
    assert ray.get(first_items.remote(*refs, refs[3], np.array([5.0]), **named)) == [
        *range(N_ARGS),
        3.0,
        5.0,
        7.0,
        -1.0,
    ]
    wait_until(lambda: _pins() == 0, 15, "every argument unpinned after the task")


def test_ref_arguments_owned_by_several_processes_are_all_resolved(small_inline_cluster):
    owned_here = [ray.put(np.full(64, float(i))) for i in range(0, 300)]
    from_workers = [
        ref
        for batch in ray.get([put_in_worker.remote(300, 300), put_in_worker.remote(600, 300)])
        for ref in batch
    ]
    assert ray.get(first_items.remote(*owned_here, *from_workers)) == list(range(900))
    wait_until(lambda: _pins() == 0, 15, "every argument unpinned after the task")


def test_an_actor_gets_many_stored_ref_arguments_at_creation_and_in_calls(small_inline_cluster):
    refs = [ray.put(np.full(64, 1.0)) for _ in range(500)]
    summer = Summer.remote(*refs)
    assert ray.get(summer.add.remote(*refs[:200])) == 700.0
    ray.kill(summer)


def test_an_argument_that_cannot_be_rebuilt_fails_the_task_and_leaves_no_pin(small_inline_cluster):
    refs = [ray.put(np.full(64, float(i))) for i in range(500)]
    broken = ray.put([Unloadable(), np.zeros(64)])
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        ray.get(first_items.remote(*refs[:250], broken, *refs[250:]))
    wait_until(lambda: _pins() == 0, 15, "every argument unpinned after the failed task")

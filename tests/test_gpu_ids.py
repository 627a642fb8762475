"""ray.get_gpu_ids(), as Ray documents it: 'the IDs of the GPUs that are available to the
worker'; without CUDA_VISIBLE_DEVICES at start-up they 'fall in the range [0, NUM_GPUS - 1]'.
The node's GPUs are only counted here (no GPU is touched), so this runs on any machine."""

from __future__ import annotations

import os
import threading

import pytest
from conftest import assert_session_clean

import babyray as ray
from babyray.actors.gpu_ids import GpuIds


def test_gpu_ids_bookkeeping():
    """Whole GPUs go to one holder each, lowest free ids first; fractions share and pack one GPU."""
    gpus = GpuIds(3)
    assert gpus.lease("a", 2) == (0, 1)
    assert gpus.lease("b", 1) == (2,)
    assert gpus.lease("c", 1) == ()  # none left: the scheduler's resource count prevents this
    gpus.release("a")
    assert gpus.lease("d", 0.5) == (0,)
    assert gpus.lease("e", 0.5) == (0,)  # packed onto the GPU already half used
    assert gpus.lease("f", 0.5) == (1,)
    assert gpus.ids("f") == (1,) and gpus.ids("nobody") == ()
    gpus.release("d")
    gpus.release("e")
    assert gpus.lease("g", 1) == (0,)
    assert gpus.lease("h", 0) == ()


@pytest.fixture
def gpu_cluster(tmp_path):
    info = ray.init(
        num_cpus=4, num_gpus=2, temp_dir=str(tmp_path), object_store_memory=128 * 1024 * 1024
    ).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


@ray.remote
class Barrier:
    """Holds callers until ``parties`` have arrived (so the tasks run at the same time)."""

    def __init__(self, parties):
        self.parties, self.arrived = parties, 0

    def arrive(self):
        self.arrived += 1

    def count(self):
        return self.arrived


@ray.remote(num_gpus=1)
def gpu_task(barrier):
    import time

    ray.get(barrier.arrive.remote())
    while ray.get(barrier.count.remote()) < 2:
        time.sleep(0.05)
    return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


@ray.remote(num_gpus=1)
class GpuActor:
    def ids(self):
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"), threading.current_thread().name


def test_tasks_running_together_hold_distinct_gpus(gpu_cluster):
    """Ray: each task with num_gpus=1 gets its own GPU id in [0, 1]; CUDA_VISIBLE_DEVICES names it."""
    barrier = Barrier.remote(2)
    results = ray.get([gpu_task.remote(barrier), gpu_task.remote(barrier)], timeout=120)
    ids = sorted(r[0][0] for r in results)
    assert ids == [0, 1]
    assert all(r[1] == str(r[0][0]) and len(r[0]) == 1 for r in results)

    @ray.remote(num_gpus=0.5)
    def half():
        return ray.get_gpu_ids()

    @ray.remote
    def none():
        return ray.get_gpu_ids()

    assert ray.get(half.remote(), timeout=60)[0] in (0, 1)
    assert ray.get(none.remote(), timeout=60) == []
    assert ray.get_gpu_ids() == []  # the driver holds no GPU


def test_an_actor_keeps_its_gpu_and_tasks_get_the_other(gpu_cluster):
    """Ray: an actor with num_gpus=1 holds its GPU for its lifetime; tasks meanwhile get the other one."""
    actor = GpuActor.remote()
    actor_ids, visible, _ = ray.get(actor.ids.remote(), timeout=60)
    assert len(actor_ids) == 1 and visible == str(actor_ids[0])

    @ray.remote(num_gpus=1)
    def task_ids():
        return ray.get_gpu_ids()

    for _ in range(3):
        assert ray.get(task_ids.remote(), timeout=60) == [1 - actor_ids[0]]
    assert ray.get(actor.ids.remote(), timeout=60)[0] == actor_ids

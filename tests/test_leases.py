"""Worker leases through the public API: after a task, its worker stays leased to the task's
owner, which pushes its next tasks of that shape straight to the worker (no local scheduler
on the way); leases end when idle or when the scheduler needs the worker back; a leased
worker's death retries (or fails) the pushed task; cancel reaches pushed tasks.

Most tests use a long ``lease_idle_timeout`` so a lease stays until something ends it."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from conftest import assert_session_clean
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.exceptions import TaskCancelledError, WorkerCrashedError
from babyray.util import state

DEADLINE = 60
LONG_LEASE = 60.0  # seconds: only a reclaim, a death or the test's end ends such a lease


@pytest.fixture
def long_leases(tmp_path):
    """A private 2-CPU cluster whose leases last a minute when idle."""
    info = ray.init(
        num_cpus=2,
        temp_dir=str(tmp_path),
        object_store_memory=64 * 1024 * 1024,
        lease_idle_timeout=LONG_LEASE,
    ).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


@ray.remote
def pid():
    return os.getpid()


@ray.remote
def pid_marked(marker_dir, seconds=0.0):
    """Note this worker's pid in ``marker_dir``, sleep (interruptibly), return the pid."""
    open(os.path.join(marker_dir, str(os.getpid())), "w").close()
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.01)
    return os.getpid()


@ray.remote
def crash_once(marker, how):
    """Note the pid and die the first time (``how``: segfault, os_exit), then return the pid."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        if how == "segfault":
            import ctypes

            ctypes.string_at(0)
        os._exit(1)
    return os.getpid()


@ray.remote
def fib(n):
    if n < 2:
        return n
    return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)], timeout=DEADLINE))


def alive_pids() -> set[int]:
    return {w["pid"] for w in state.list_workers() if w["state"] != "DEAD"}


def leased_pids() -> set[int]:
    return {w["pid"] for w in state.list_workers() if w["state"] == "LEASED"}


def marks(tmp_path) -> str:
    """An empty directory for ``pid_marked``."""
    path = tmp_path / "marks"
    path.mkdir()
    return str(path)


def lease_a_worker() -> int:
    """Run one task; its worker stays leased to this driver: its pid."""
    worker = ray.get(pid.remote(), timeout=DEADLINE)
    wait_until(lambda: worker in leased_pids(), 15, "the worker leased")
    return worker


def scheduler_pid(session_dir: str) -> int:
    pids = os.path.join(session_dir, "pids")
    for name in os.listdir(pids):
        with open(os.path.join(pids, name)) as f:
            if f.read() == "local_scheduler":
                return int(name)
    raise AssertionError("no local scheduler registered")


def test_a_loop_of_tasks_runs_on_the_leased_worker_without_the_local_scheduler(long_leases):
    leased = lease_a_worker()
    scheduler = scheduler_pid(long_leases["session_dir"])
    os.kill(scheduler, signal.SIGSTOP)  # the local scheduler takes no message now
    try:
        refs = []
        for _ in range(20):
            refs.append(pid.remote())
            assert ray.get(refs[-1], timeout=DEADLINE) == leased
    finally:
        os.kill(scheduler, signal.SIGCONT)
    worker_id = next(w["worker_id"] for w in state.list_workers() if w["pid"] == leased)
    task_id = refs[-1].task_id()
    wait_until(
        lambda: (state.get_task(task_id) or {}).get("state") == "FINISHED", 15, "the pushed task recorded"
    )
    task = state.get_task(task_id)
    assert task["worker_id"] == worker_id and task["node_id"] == long_leases["node_id"]
    assert task["started_at"] and task["finished_at"] >= task["started_at"]


def test_leases_end_when_idle_and_not_at_all_when_off(tmp_path):
    for timeout in (0.1, 0.0):
        info = ray.init(
            num_cpus=2, temp_dir=str(tmp_path / str(timeout)), lease_idle_timeout=timeout
        ).address_info
        try:
            seen = set()
            for _ in range(20):
                assert ray.get(pid.remote(), timeout=DEADLINE) > 0
                seen |= {w["state"] for w in state.list_workers()}
            assert ("LEASED" in seen) == (timeout > 0)
            wait_until(lambda: {w["state"] for w in state.list_workers()} == {"IDLE"}, 15, "no lease left")
        finally:
            ray.shutdown()
        assert_session_clean(info["session_dir"])


@pytest.mark.parametrize("how", ["segfault", "os_exit"])
def test_a_pushed_task_that_kills_its_worker_is_retried(long_leases, tmp_path, how):
    leased = lease_a_worker()
    marker = tmp_path / "crashed"
    again = ray.get(crash_once.options(max_retries=1).remote(str(marker), how), timeout=DEADLINE)
    assert int(marker.read_text()) == leased and again != leased  # pushed, then retried elsewhere
    assert ray.get([pid.remote() for _ in range(4)], timeout=DEADLINE)


def test_a_pushed_task_whose_worker_is_killed_fails_without_retries(long_leases, tmp_path):
    leased = lease_a_worker()
    marked = marks(tmp_path)
    ref = pid_marked.options(max_retries=0).remote(marked, 60)
    wait_until(lambda: os.listdir(marked) == [str(leased)], 30, "the pushed task running")
    os.kill(leased, signal.SIGKILL)
    with pytest.raises(WorkerCrashedError, match="SIGKILL") as info:
        ray.get(ref, timeout=DEADLINE)
    assert "pid_marked" in str(info.value)
    assert ray.get([pid.remote() for _ in range(4)], timeout=DEADLINE)


def test_a_pushed_task_whose_worker_is_killed_is_retried(long_leases, tmp_path):
    leased = lease_a_worker()
    marked = marks(tmp_path)
    ref = pid_marked.options(max_retries=2).remote(marked, 1.0)
    wait_until(lambda: os.listdir(marked) == [str(leased)], 30, "the pushed task running")
    os.kill(leased, signal.SIGKILL)
    assert ray.get(ref, timeout=DEADLINE) != leased


@pytest.mark.parametrize("force", [False, True])
def test_cancel_of_a_pushed_task(long_leases, tmp_path, force):
    leased = lease_a_worker()
    marked = marks(tmp_path)
    ref = pid_marked.remote(marked, 60)
    wait_until(lambda: os.listdir(marked) == [str(leased)], 30, "the pushed task running")
    ray.cancel(ref, force=force)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=DEADLINE)
    if force:  # the worker is killed
        wait_until(lambda: leased not in alive_pids(), 15, "the worker gone")
    else:
        assert leased in alive_pids()
    assert len(ray.get([pid.remote() for _ in range(4)], timeout=DEADLINE)) == 4


@ray.remote(num_cpus=0)
class Looper:
    """A second owner: it loops over tasks too."""

    def run(self, n):
        return [ray.get(pid.remote(), timeout=DEADLINE) for _ in range(n)]


@ray.remote(num_cpus=2)
def both_cpus():
    return "whole node"


def test_owners_and_shapes_competing_get_leases_back_and_every_task_finishes(long_leases):
    """Three owners loop over 1-CPU tasks on 2 CPUs while 2-CPU tasks come: leases that would
    last a minute are reclaimed whenever tasks wait."""
    loopers = [Looper.remote() for _ in range(2)]
    runs = [looper.run.remote(30) for looper in loopers]
    mine = []
    for i in range(30):
        mine.append(ray.get(pid.remote(), timeout=DEADLINE))
        if i % 10 == 0:
            assert ray.get(both_cpus.remote(), timeout=DEADLINE) == "whole node"
    assert all(len(pids) == 30 for pids in ray.get(runs, timeout=DEADLINE)) and len(mine) == 30


def test_remote_recursion_with_leases_finishes(long_leases):
    assert ray.get(fib.remote(9), timeout=300) == 34
    assert ray.get(fib.remote(7), timeout=300) == 13  # again, with the leases of the first run


@ray.remote
def work(kind, x):
    if kind == "raise":
        raise ValueError(f"bad {x}")
    if kind == "nested":
        return sum(ray.get([work.remote("plain", x), work.remote("plain", x + 1)], timeout=DEADLINE))
    if kind == "sleep":  # in short steps: a cancel interrupts it between two
        end = time.time() + x
        while time.time() < end:
            time.sleep(0.01)
        return x
    return x * 2


@pytest.mark.parametrize("lease_idle_timeout", [0.05, 1.0])
def test_a_seeded_random_mix(tmp_path, lease_idle_timeout):
    rng = random.Random(1702)
    info = ray.init(num_cpus=2, temp_dir=str(tmp_path), lease_idle_timeout=lease_idle_timeout).address_info
    cancels = 0
    try:
        for _ in range(100):
            op = rng.choice(["one", "one", "batch", "wide", "raise", "nested", "pause", "cancel"])
            x = rng.randrange(100)
            if op == "one":
                assert ray.get(work.remote("plain", x), timeout=DEADLINE) == 2 * x
            elif op == "batch":
                n = rng.randrange(1, 12)
                assert ray.get([work.remote("plain", x + i) for i in range(n)], timeout=DEADLINE) == [
                    2 * (x + i) for i in range(n)
                ]
            elif op == "wide":
                ref = work.options(num_cpus=2).remote("plain", x)
                assert ray.get([ref, work.remote("plain", x)], timeout=DEADLINE) == [2 * x, 2 * x]
            elif op == "raise":
                with pytest.raises(ValueError, match=f"bad {x}"):
                    ray.get(work.remote("raise", x), timeout=DEADLINE)
            elif op == "nested":
                assert ray.get(work.remote("nested", x), timeout=DEADLINE) == 4 * x + 2
            elif op == "pause":
                time.sleep(rng.choice([0.0, 0.03, 0.08, 0.15]))
            else:
                ref = work.remote("sleep", 60)
                time.sleep(rng.choice([0.0, 0.2]))
                cancels += 1
                ray.cancel(ref, force=cancels % 2 == 0)
                with pytest.raises((TaskCancelledError, WorkerCrashedError)):
                    ray.get(ref, timeout=DEADLINE)
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])

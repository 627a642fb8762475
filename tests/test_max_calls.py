"""``@remote(max_calls=n)``: a worker that ran the function n times exits after the n-th run
(the next run gets a fresh worker), as in Ray; a GPU function's default is 1. Tasks that were
waiting on a retiring worker are handed back and run elsewhere, none lost or retried."""

from __future__ import annotations

import collections
import os
import time

import pytest
from conftest import assert_session_clean

import babyray as ray
from babyray.procfs import is_running

TIMEOUT = 60


@pytest.fixture
def one_cpu(tmp_path):
    """A 1-CPU cluster: every task would run on its one worker unless that worker retires."""
    info = ray.init(num_cpus=1, temp_dir=str(tmp_path)).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


@ray.remote(max_calls=2)
def pid_twice() -> int:
    return os.getpid()


@ray.remote
def pid_always() -> int:
    return os.getpid()


@ray.remote(max_calls=1, max_retries=0)
def tagged(i: int) -> tuple[int, int]:
    return i, os.getpid()


def wait_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while any(is_running(pid) for pid in pids):
        assert time.monotonic() < deadline, (
            f"retired workers still running: {[p for p in pids if is_running(p)]}"
        )
        time.sleep(0.05)


def test_a_worker_runs_the_function_at_most_max_calls_times(one_cpu):
    pids = [ray.get(pid_twice.remote(), timeout=TIMEOUT) for _ in range(6)]
    runs = collections.Counter(pids)
    assert max(runs.values()) <= 2, runs
    assert len(runs) >= 3, runs
    wait_gone(set(pids[:-2]))  # every worker but the last one's retired, and its process ended


def test_without_max_calls_the_worker_is_reused(one_cpu):
    pids = {ray.get(pid_always.remote(), timeout=TIMEOUT) for _ in range(6)}
    assert len(pids) == 1


def test_tasks_queued_behind_a_retiring_worker_all_run_once(one_cpu):
    results = ray.get([tagged.remote(i) for i in range(12)], timeout=TIMEOUT)
    assert [i for i, _ in results] == list(range(12))
    assert len({pid for _, pid in results}) == 12  # one run per worker, none retried elsewhere


def test_other_functions_run_beside_a_limited_one(one_cpu):
    refs = [(tagged if i % 2 else pid_always).remote(*((i,) if i % 2 else ())) for i in range(10)]
    results = ray.get(refs, timeout=TIMEOUT)
    assert [r[0] for r in results[1::2]] == [1, 3, 5, 7, 9]
    assert all(isinstance(pid, int) for pid in results[0::2])


def test_options_keep_max_calls_and_refuse_a_new_one(one_cpu):
    with pytest.raises(ValueError, match=r"Setting 'max_calls' is not supported in '\.options\(\)'"):
        pid_twice.options(max_calls=5)
    renamed = pid_twice.options(name="renamed")
    runs = collections.Counter(ray.get(renamed.remote(), timeout=TIMEOUT) for _ in range(4))
    assert max(runs.values()) <= 2, runs


def test_max_calls_must_be_a_count():
    with pytest.raises(ValueError, match="max_calls"):
        ray.remote(max_calls=-1)(lambda: None)


def test_a_gpu_function_gets_a_fresh_worker_each_run(tmp_path):
    info = ray.init(num_cpus=1, num_gpus=1, temp_dir=str(tmp_path)).address_info
    try:

        @ray.remote(num_gpus=1)
        def gpu_pid() -> int:
            return os.getpid()

        @ray.remote(num_gpus=1, max_calls=0)
        def gpu_pid_reused() -> int:
            return os.getpid()

        assert len({ray.get(gpu_pid.remote(), timeout=TIMEOUT) for _ in range(3)}) == 3
        assert len({ray.get(gpu_pid_reused.remote(), timeout=TIMEOUT) for _ in range(3)}) == 1
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])

"""ray.util.multiprocessing.Pool: the multiprocessing.Pool API on actors, as Ray documents it
('Distributed multiprocessing.Pool': 'The full multiprocessing.Pool API is currently supported')."""

from __future__ import annotations

import os
import time

import pytest

from babyray.util.multiprocessing import Pool, TimeoutError

_initialized = []


def square(x):
    return x * x


def add(a, b):
    return a + b


def pid(_=None):
    return os.getpid()


def fail_on_three(x):
    if x == 3:
        raise ValueError("three is bad")
    return x


def sleep_then(x):
    time.sleep(x)
    return x


def remember(value):
    _initialized.append(value)


def initialized(_=None):
    return list(_initialized)


def test_map_starmap_apply(shared_cluster):
    """multiprocessing: map(f, it) == [f(x) ...], starmap unpacks, apply runs one call."""
    with Pool(processes=2) as pool:
        assert pool.map(square, range(20)) == [x * x for x in range(20)]
        assert pool.map(square, range(5), chunksize=2) == [0, 1, 4, 9, 16]
        assert pool.starmap(add, [(1, 2), (3, 4), (5, 6)]) == [3, 7, 11]
        assert pool.apply(add, (2, 3)) == 5
        assert pool.apply(add, (), {"a": 1, "b": 1}) == 2
        assert len(set(pool.map(pid, range(8), chunksize=1))) == 2  # both processes work


def test_imap_ordered_and_unordered(shared_cluster):
    """multiprocessing: imap yields in input order; imap_unordered as results finish; both take iterators."""
    with Pool(processes=2) as pool:
        assert list(pool.imap(square, iter(range(9)))) == [x * x for x in range(9)]
        assert list(pool.imap_unordered(sleep_then, [1.0, 0.01, 0.02]))[0] == 0.01
        assert sorted(pool.imap_unordered(square, range(9), chunksize=2)) == sorted(x * x for x in range(9))
        slow = pool.imap(sleep_then, [2.0])
        with pytest.raises(TimeoutError):
            slow.next(timeout=0.1)
        assert slow.next(timeout=60) == 2.0
        with pytest.raises(StopIteration):
            next(slow)


def test_async_results_and_callbacks(shared_cluster):
    """multiprocessing: apply_async/map_async return AsyncResult (get/wait/ready/successful);
    callback gets the result(s), error_callback the first error."""
    with Pool(processes=2) as pool:
        got, errors = [], []
        result = pool.apply_async(square, (7,), callback=got.append)
        assert result.get(timeout=60) == 49
        assert result.ready() and result.successful()
        many = pool.map_async(square, range(4), callback=got.append)
        assert many.get(timeout=60) == [0, 1, 4, 9]
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == [49, [0, 1, 4, 9]]

        bad = pool.map_async(fail_on_three, range(5), error_callback=errors.append)
        bad.wait(60)
        assert bad.ready() and not bad.successful()
        with pytest.raises(ValueError, match="three is bad"):
            bad.get()
        assert len(errors) == 1 and isinstance(errors[0], ValueError)

        slow = pool.apply_async(sleep_then, (2.0,))
        assert not slow.ready()
        with pytest.raises(ValueError):
            slow.successful()
        with pytest.raises(TimeoutError):
            slow.get(timeout=0.1)
        assert slow.get(timeout=60) == 2.0


def test_errors_reach_the_caller(shared_cluster):
    """multiprocessing: an exception in the function is raised by map/imap/apply in the caller."""
    with Pool(processes=2) as pool:
        with pytest.raises(ValueError, match="three is bad"):
            pool.map(fail_on_three, range(5))
        results = pool.imap(fail_on_three, range(5))
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError):
            next(results)
        with pytest.raises(ValueError):
            pool.apply(fail_on_three, (3,))


def test_initializer_runs_in_every_process(shared_cluster):
    """multiprocessing: each worker process calls initializer(*initargs) when it starts."""
    with Pool(processes=2, initializer=remember, initargs=("ready",)) as pool:
        assert pool.map(initialized, range(4), chunksize=1) == [["ready"]] * 4


def test_close_join_terminate_and_bad_input(shared_cluster):
    """multiprocessing: close() stops new work, join() waits for the work sent; join on a running
    pool and use after close raise ValueError; terminate() stops the processes."""
    pool = Pool(processes=2)
    pending = pool.map_async(sleep_then, [0.5, 0.5])
    pool.close()
    with pytest.raises(ValueError):
        pool.map(square, [1])
    pool.join()
    assert pending.get(timeout=1) == [0.5, 0.5]

    pool = Pool(processes=1)
    with pytest.raises(ValueError):
        pool.join()
    pool.terminate()
    with pytest.raises(ValueError):
        pool.apply(square, (1,))
    with pytest.raises(ValueError):
        Pool(processes=0)
    with pytest.raises(ValueError):
        Pool(processes=64)  # more than the cluster's CPUs


def test_maxtasksperchild_replaces_processes(shared_cluster):
    """multiprocessing: after maxtasksperchild tasks a worker process is replaced by a new one."""
    with Pool(processes=1, maxtasksperchild=1) as pool:
        assert len(set(pool.map(pid, range(3), chunksize=1))) == 3

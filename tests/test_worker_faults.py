"""Worker deaths of every kind end in a retry or a clear error, never a hang.

Each test has a deadline on every get; the fixtures check that teardown leaves nothing.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import sys
import time

import pytest
from conftest import assert_session_clean, wait_for_file

import babyray as ray
from babyray.exceptions import ActorDiedError, RayActorError, WorkerCrashedError


@ray.remote
def add(a, b):
    return a + b


@ray.remote
def crash_once(marker, how):
    """Die the first time (``how``: segfault, exit0, exit3, os_exit), succeed on a retry."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        if how == "segfault":
            ctypes.string_at(0)
        elif how == "exit0":
            sys.exit(0)
        elif how == "exit3":
            sys.exit(3)
        else:
            os._exit(1)
    return os.getpid()


@ray.remote
def crash_always(how):
    if how == "segfault":
        ctypes.string_at(0)
    elif how == "exit0":
        sys.exit(0)
    elif how == "exit3":
        sys.exit(3)
    os._exit(1)


@ray.remote
def busy_pid(marker_dir, seconds):
    with open(os.path.join(marker_dir, f"{os.getpid()}"), "w"):
        pass
    time.sleep(seconds)
    return os.getpid()


@ray.remote
def short_marking_pid(marker_dir, i):
    open(os.path.join(marker_dir, f"{os.getpid()}"), "w").close()
    time.sleep(0.02)
    return i


@ray.remote
def sleep(seconds):
    time.sleep(seconds)
    return seconds


def cluster_still_runs():
    assert ray.get([add.remote(i, 1) for i in range(6)], timeout=60) == list(range(1, 7))


@pytest.mark.parametrize("how", ["segfault", "exit0", "exit3"])
def test_a_task_that_kills_its_worker_is_retried(cluster, tmp_path, how):
    pid = ray.get(crash_once.options(max_retries=1).remote(str(tmp_path / "m"), how), timeout=60)
    assert pid != os.getpid()
    cluster_still_runs()


@pytest.mark.parametrize(
    "how, status", [("segfault", "SIGSEGV"), ("exit0", "exit status 0"), ("exit3", "exit status 3")]
)
def test_a_task_that_kills_its_worker_past_its_retries_fails_naming_pid_and_status(cluster, how, status):
    with pytest.raises(WorkerCrashedError) as info:
        ray.get(crash_always.options(max_retries=1).remote(how), timeout=60)
    text = str(info.value)
    assert "crash_always" in text and status in text and "pid " in text
    cluster_still_runs()


def test_a_segfault_writes_the_python_stack_to_the_worker_log(cluster):
    with pytest.raises(WorkerCrashedError):
        ray.get(crash_always.options(max_retries=0).remote("segfault"), timeout=60)
    logs = os.path.join(cluster["session_dir"], "logs")
    text = "".join(
        open(os.path.join(logs, f), errors="replace").read()
        for f in os.listdir(logs)
        if os.path.isfile(os.path.join(logs, f))
    )
    assert "Segmentation fault" in text and "crash_always" in text


@pytest.mark.parametrize("count", [2, 20])
def test_tasks_killing_their_workers_at_the_same_time_are_all_retried(cluster, tmp_path, count):
    refs = [
        crash_once.options(max_retries=3).remote(str(tmp_path / f"m{i}"), "os_exit") for i in range(count)
    ]
    pids = ray.get(refs, timeout=120)
    assert len(pids) == count and all(isinstance(p, int) for p in pids)
    cluster_still_runs()


def test_tasks_that_ran_before_a_crash_on_their_worker_are_not_charged_for_it(cluster, tmp_path):
    """A worker with tasks queued sends their results together, so some that finished may die
    unsent with it: they run again, but the crash costs a retry only to the task that crashed
    (with none to spend, they would fail)."""
    refs, crashers = [], []
    for i in range(5):
        refs += [add.options(max_retries=0).remote(i, j) for j in range(20)]
        crashers.append(crash_once.options(max_retries=1).remote(str(tmp_path / f"m{i}"), "os_exit"))
    assert ray.get(refs, timeout=120) == [i + j for i in range(5) for j in range(20)]
    assert all(isinstance(pid, int) for pid in ray.get(crashers, timeout=120))
    cluster_still_runs()


def test_two_busy_workers_killed_together_lose_none_of_200_tasks(cluster, tmp_path):
    marks = tmp_path / "busy"
    marks.mkdir()
    shorts = [short_marking_pid.options(max_retries=3).remote(str(marks), i) for i in range(200)]
    killed: set[int] = set()
    for _ in range(2):  # twice (within every task's retries), both workers running the stream die together
        deadline = time.time() + 60
        while time.time() < deadline:
            fresh = [int(p) for p in os.listdir(marks) if int(p) not in killed]
            if len(fresh) >= 2:
                break
            time.sleep(0.005)
        assert len(fresh) >= 2
        for pid in fresh[:2]:
            os.kill(pid, signal.SIGKILL)
        killed.update(fresh[:2])
    assert ray.get(shorts, timeout=120) == list(range(200))
    cluster_still_runs()


def test_force_cancel_of_just_submitted_tasks_strands_nothing(cluster):
    for _ in range(10):
        doomed = [sleep.remote(30) for _ in range(2)]
        for ref in doomed:
            ray.cancel(ref, force=True)
        assert ray.get([add.remote(i, 0) for i in range(10)], timeout=60) == list(range(10))
        for ref in doomed:
            with pytest.raises(ray.exceptions.TaskCancelledError):
                ray.get(ref, timeout=60)


@ray.remote(num_cpus=0)
class Counter:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n

    def leave(self):
        ray.actor.exit_actor()
        return "not reached"

    def slow(self, seconds):
        time.sleep(seconds)
        return seconds


def test_actors_past_the_worker_limit_fail_clearly_and_tasks_still_run(tmp_path):
    info = ray.init(
        num_cpus=2, temp_dir=str(tmp_path), object_store_memory=64 * 1024 * 1024, max_workers=12
    ).address_info
    try:
        actors = [Counter.remote() for _ in range(300)]
        started, refused = 0, 0
        for actor in actors:
            try:
                assert ray.get(actor.inc.remote(), timeout=120) == 1
                started += 1
            except ActorDiedError as exc:
                assert "max_workers" in str(exc)
                refused += 1
        assert (started, refused) == (10, 290)  # 12 workers: 2 kept for tasks, 10 for actors
        cluster_still_runs()
    finally:
        del actors
        ray.shutdown()
    assert_session_clean(info["session_dir"])


def test_exit_actor_ends_the_actor_for_good(cluster):
    actor = Counter.options(max_restarts=3).remote()
    assert ray.get(actor.inc.remote(), timeout=60) == 1
    slow = actor.slow.remote(0.5)
    leaving = actor.leave.remote()
    queued = actor.inc.remote()
    assert ray.get(slow, timeout=60) == 0.5
    with pytest.raises(RayActorError):
        ray.get(leaving, timeout=60)
    with pytest.raises(RayActorError):
        ray.get(queued, timeout=60)
    with pytest.raises(ActorDiedError):  # no restart despite max_restarts
        ray.get(actor.inc.remote(), timeout=60)
    cluster_still_runs()


def test_exit_actor_in_an_async_actor(cluster):
    @ray.remote(num_cpus=0, max_restarts=2)
    class Async:
        async def ping(self):
            return "pong"

        async def leave(self):
            ray.actor.exit_actor()

    actor = Async.remote()
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"
    with pytest.raises(RayActorError):
        ray.get(actor.leave.remote(), timeout=60)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        ray.get(actor.ping.remote(), timeout=60)
    cluster_still_runs()


@ray.remote(num_cpus=0, max_restarts=1, concurrency_groups={"io": 2})
class Grouped:
    def pid(self):
        return os.getpid()

    @ray.method(concurrency_group="io")
    def leave(self):
        ray.actor.exit_actor()

    def quit(self):
        sys.exit(2)

    @ray.method(concurrency_group="io")
    def quit_in_group(self):
        sys.exit(2)


def test_exit_actor_in_a_concurrency_group_method_ends_the_actor(cluster):
    actor = Grouped.remote()
    assert isinstance(ray.get(actor.pid.remote(), timeout=60), int)
    with pytest.raises(RayActorError):
        ray.get(actor.leave.remote(), timeout=60)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        ray.get(actor.pid.remote(), timeout=60)
    cluster_still_runs()


@pytest.mark.parametrize("method", ["quit", "quit_in_group"])
def test_sys_exit_in_an_actor_method_restarts_the_actor(cluster, method):
    actor = Grouped.remote()
    first = ray.get(actor.pid.remote(), timeout=60)
    with pytest.raises(RayActorError):
        ray.get(getattr(actor, method).remote(), timeout=60)
    deadline = time.time() + 60
    while True:
        try:
            second = ray.get(actor.pid.remote(), timeout=60)
            break
        except RayActorError:
            assert time.time() < deadline
            time.sleep(0.1)
    assert second != first
    cluster_still_runs()


def test_exit_actor_outside_an_actor_is_a_type_error(cluster):
    with pytest.raises(TypeError):
        ray.actor.exit_actor()

    @ray.remote
    def in_task():
        try:
            ray.actor.exit_actor()
        except TypeError:
            return "TypeError"

    assert ray.get(in_task.remote(), timeout=60) == "TypeError"


def test_a_killed_actor_worker_still_restarts_within_max_restarts(cluster):
    @ray.remote(num_cpus=0, max_restarts=1)
    class Pid:
        def pid(self):
            return os.getpid()

    actor = Pid.remote()
    first = ray.get(actor.pid.remote(), timeout=60)
    os.kill(first, signal.SIGKILL)
    deadline = time.time() + 60
    while True:
        try:
            second = ray.get(actor.pid.remote(), timeout=60)
            break
        except RayActorError:
            assert time.time() < deadline
            time.sleep(0.1)
    assert second != first
    os.kill(second, signal.SIGKILL)
    with pytest.raises(RayActorError):
        while time.time() < deadline:
            ray.get(actor.pid.remote(), timeout=60)
            time.sleep(0.1)
    cluster_still_runs()


def test_a_worker_killed_from_outside_fails_its_task_naming_the_signal(cluster, tmp_path):
    marks = tmp_path / "busy"
    marks.mkdir()
    ref = busy_pid.options(max_retries=0).remote(str(marks), 60)
    deadline = time.time() + 60
    while not os.listdir(marks) and time.time() < deadline:
        time.sleep(0.01)
    os.kill(int(os.listdir(marks)[0]), signal.SIGKILL)
    with pytest.raises(WorkerCrashedError, match="SIGKILL"):
        ray.get(ref, timeout=30)
    cluster_still_runs()


@ray.remote(max_retries=0)
def megabyte(i):
    return bytes([i % 256]) * (1 << 20)


@pytest.mark.parametrize("force", [True, False], ids=["force", "interrupt"])
def test_cancels_racing_their_tasks_end_harm_no_other_task(cluster, force):
    """A cancel that arrives as its task ends must not reach the worker's next task (Ray:
    cancelling a finished task does nothing): a forced one must not kill it, a plain one must
    not interrupt the worker storing the returns (an interrupt there once left the worker's
    store channel waiting forever for a reply it had read). No task here may be retried, so a
    worker killed under another task shows as that task's WorkerCrashedError."""
    rng = random.Random(20261204)
    for _ in range(40):
        refs = [megabyte.remote(i) for i in range(10)]
        doomed = set(rng.sample(range(10), 5))
        time.sleep(rng.uniform(0, 0.03))
        for i in sorted(doomed):
            ray.cancel(refs[i], force=force)
        for i, ref in enumerate(refs):
            try:
                value = ray.get(ref, timeout=60)
            except ray.exceptions.TaskCancelledError:
                assert i in doomed, f"task {i}, not cancelled, failed as cancelled"
                continue
            except WorkerCrashedError as exc:
                raise AssertionError(f"task {i} (cancelled: {i in doomed}) lost its worker: {exc}") from exc
            assert value == bytes([i]) * (1 << 20)
    cluster_still_runs()


@ray.remote(max_retries=0)
def churn_the_store(i):
    while True:
        ref = ray.put(bytes([i % 256]) * (1 << 20))
        assert ray.get(ref, timeout=30)[:1] == bytes([i % 256])


def test_cancels_of_tasks_inside_put_and_get_harm_no_later_task(cluster):
    """A plain cancel landing while the task is inside ray.put or ray.get waits until the call
    returns: raised midway, it tore the store channel's request and the worker's next task
    waited forever (a get timeout after 1-2 of these rounds)."""
    rng = random.Random(20261204)
    for _ in range(15):
        busy = [churn_the_store.remote(i) for i in range(2)]
        time.sleep(rng.uniform(0.01, 0.2))
        for ref in busy:
            ray.cancel(ref)
        for ref in busy:
            with pytest.raises(ray.exceptions.TaskCancelledError):
                ray.get(ref, timeout=60)
        refs = [megabyte.remote(i) for i in range(10)]
        assert ray.get(refs, timeout=60) == [bytes([i]) * (1 << 20) for i in range(10)]
    cluster_still_runs()


@ray.remote(max_retries=0)
def wait_for_child(marker):
    child = sleep.remote(300)
    open(marker, "w").close()
    return ray.get(child)


def test_cancel_stops_a_task_waiting_in_get(cluster, tmp_path):
    """The cancel reaches a task blocked in get at once, not when the value it waits for comes."""
    marker = str(tmp_path / "waiting")
    ref = wait_for_child.remote(marker)
    wait_for_file(marker, timeout=30)
    time.sleep(0.2)  # into the get
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=20)
    cluster_still_runs()


@ray.remote(max_retries=0)
def hold_the_gil(marker):
    open(marker, "w").close()
    return sum(range(10**12))  # one C call: the worker's message loop gets no turn


def test_force_cancel_kills_a_task_that_never_lets_its_worker_answer(cluster, tmp_path):
    marker = str(tmp_path / "started")
    ref = hold_the_gil.remote(marker)
    wait_for_file(marker, timeout=30)
    ray.cancel(ref, force=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    cluster_still_runs()

"""ray.cancel beyond the single running task: recursive=True (Ray's default) cancels what the
task submitted, down the tree, recursive=False leaves it running; and a cancelled task is never
run again (Ray: "Cancelled Tasks aren't retried"), whether it raises or its worker dies before
the cancel stops it. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from conftest import wait_for_file

import babyray as ray
from babyray.exceptions import TaskCancelledError


@ray.remote(max_retries=0)
def leaf(marks):
    """Runs until interrupted (in short sleeps: a cancel interrupts Python code, not a C call)."""
    with open(os.path.join(marks, "leaf_started"), "w") as f:
        f.write(str(os.getpid()))
    try:
        for _ in range(3000):
            time.sleep(0.1)
    except KeyboardInterrupt:
        open(os.path.join(marks, "leaf_interrupted"), "w").close()
        raise
    return "leaf ran to its end"


@ray.remote(max_retries=0)
def chain(marks, depth):
    """``depth`` tasks, each blocked in get of the next, above a leaf."""
    child = leaf.remote(marks) if depth == 0 else chain.remote(marks, depth - 1)
    return ray.get(child)


@ray.remote
class Sleeper:
    async def nap(self, marks):
        open(os.path.join(marks, "call_started"), "w").close()
        try:
            await asyncio.sleep(300)
        except asyncio.CancelledError:
            open(os.path.join(marks, "call_cancelled"), "w").close()
            raise


@ray.remote(max_retries=0)
def call_and_wait(sleeper, marks):
    return ray.get(sleeper.nap.remote(marks))


@pytest.mark.parametrize("force", [False, True], ids=["interrupt", "force"])
def test_cancel_reaches_the_grandchild(cluster, tmp_path, force):
    marks = str(tmp_path)
    top = chain.remote(marks, 1)
    wait_for_file(os.path.join(marks, "leaf_started"), timeout=30)
    time.sleep(0.2)  # every task of the chain is in its get
    with open(os.path.join(marks, "leaf_started")) as f:
        leaf_pid = int(f.read())
    ray.cancel(top, force=force)
    with pytest.raises(TaskCancelledError):
        ray.get(top, timeout=30)
    if not force:
        wait_for_file(os.path.join(marks, "leaf_interrupted"), timeout=30)
        return
    deadline = time.monotonic() + 30  # a forced cancel kills the leaf's worker too
    while os.path.exists(f"/proc/{leaf_pid}"):
        assert time.monotonic() < deadline, "the leaf's worker still runs"
        time.sleep(0.05)


def test_recursive_false_leaves_the_child_running(cluster, tmp_path):
    marks = str(tmp_path)
    top = chain.remote(marks, 0)
    wait_for_file(os.path.join(marks, "leaf_started"), timeout=30)
    time.sleep(0.2)
    ray.cancel(top, recursive=False)
    with pytest.raises(TaskCancelledError):
        ray.get(top, timeout=30)
    time.sleep(1.0)  # a recursive cancel reaches the leaf in milliseconds
    assert not os.path.exists(os.path.join(marks, "leaf_interrupted"))


def test_cancel_reaches_an_actor_call_the_task_waits_for(cluster, tmp_path):
    marks = str(tmp_path)
    sleeper = Sleeper.remote()
    top = call_and_wait.remote(sleeper, marks)
    wait_for_file(os.path.join(marks, "call_started"), timeout=30)
    time.sleep(0.2)
    ray.cancel(top, force=True)  # force is ignored for the child actor call, as in Ray
    with pytest.raises(TaskCancelledError):
        ray.get(top, timeout=30)
    wait_for_file(os.path.join(marks, "call_cancelled"), timeout=30)


@ray.remote(max_retries=0)
def busy_tree(depth):
    """A binary tree of tasks: inner ones wait in get for their two subtasks, leaves loop 300 s."""
    if depth == 0:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return 1
    return sum(ray.get([busy_tree.remote(depth - 1), busy_tree.remote(depth - 1)]))


def _cpus_come_back(within: float) -> None:
    total = ray.cluster_resources()["CPU"]
    deadline = time.monotonic() + within
    while ray.available_resources().get("CPU") != total:
        assert time.monotonic() < deadline, f"CPUs still held: {ray.available_resources()} of {total}"
        time.sleep(0.1)


@pytest.mark.parametrize("force", [False, True], ids=["interrupt", "force"])
def test_cancelling_the_root_of_a_busy_tree_stops_every_task_in_it(cluster, force):
    root = busy_tree.remote(3)  # 15 tasks, 8 leaves: more than the 2 CPUs, blocked ones lend theirs
    time.sleep(2.0)  # the tree unfolds
    ray.cancel(root, force=force)
    with pytest.raises(TaskCancelledError):
        ray.get(root, timeout=30)
    _cpus_come_back(within=30)


def _loop_unless_run_before(marker: str, catch_interrupts: bool) -> str:
    """A second run returns at once; the first writes its pid to ``marker`` and loops for 300 s
    (``catch_interrupts``: shrugging off a cancel's KeyboardInterrupt)."""
    if os.path.exists(marker):
        return "run again"
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:
            if not catch_interrupts:
                raise
    return "ran to its end"


@ray.remote(max_retries=3)
def shrug_off_cancels(marker):
    return _loop_unless_run_before(marker, catch_interrupts=True)


@ray.remote(max_retries=3, retry_exceptions=True)
def retried_on_any_exception(marker):
    return _loop_unless_run_before(marker, catch_interrupts=False)


def test_a_task_cancelled_as_its_worker_dies_is_not_run_again(cluster, tmp_path):
    marker = str(tmp_path / "pid")
    ref = shrug_off_cancels.remote(marker)
    wait_for_file(marker, timeout=30)
    time.sleep(0.1)  # the pid is written
    with open(marker) as f:
        pid = int(f.read())
    ray.cancel(ref)
    time.sleep(0.5)  # the cancel reached the worker, whose task ignores it
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=30)


def test_a_cancelled_task_is_not_retried_on_its_exception(cluster, tmp_path):
    marker = str(tmp_path / "pid")
    ref = retried_on_any_exception.remote(marker)
    wait_for_file(marker, timeout=30)
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=30)

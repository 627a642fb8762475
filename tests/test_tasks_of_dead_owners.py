"""The tasks of an owner that died are cancelled, as in Ray: nobody can take their results. A
driver killed with tasks running and queued frees the cluster's CPUs at once: its running
tasks' workers are killed and its queued tasks never start. Before, they ran to their end."""

from __future__ import annotations

import os
import signal
import time

import pytest
from cli_cluster import run_driver, running_head
from conftest import eventually

import babyray as ray
from babyray.procfs import is_running

OWNER = """
import os, signal, sys, time, babyray as ray
address, markers = sys.argv[1:3]
ray.init(address=address)

@ray.remote
def sleeper(i):
    with open(os.path.join(markers, f"started-{i}"), "w") as out:
        out.write(str(os.getpid()))
    time.sleep(300)

refs = [sleeper.remote(i) for i in range(6)]  # two run (2 CPUs), four wait in the queue
while len(os.listdir(markers)) < 2:
    time.sleep(0.05)
os.kill(os.getpid(), signal.SIGKILL)
"""

CHECKER = """
import sys, time, babyray as ray
ray.init(address=sys.argv[1])

@ray.remote
def one():
    return 1

start = time.monotonic()
print("RAN", ray.get([one.remote(), one.remote()], timeout=60), round(time.monotonic() - start, 1))
ray.shutdown()
"""


def test_a_killed_drivers_running_and_queued_tasks_are_cancelled(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    owner, checker = tmp_path / "owner.py", tmp_path / "checker.py"
    owner.write_text(OWNER)
    checker.write_text(CHECKER)
    with running_head(tmp_path) as (address, env):
        run = run_driver(owner, address, str(markers), env=env, timeout=120)
        assert run.returncode == -9, run.stderr[-3000:]
        pids = [int((markers / name).read_text()) for name in os.listdir(markers)]
        assert len(pids) == 2
        assert eventually(lambda: not any(is_running(pid) for pid in pids)), "its tasks still run"
        run_driver(checker, address, env=env, timeout=120, expect="RAN [1, 1]")
        time.sleep(2)  # the queued tasks, had they not been dropped, would have started by now
        assert sorted(os.listdir(markers)) == ["started-0", "started-1"]


@ray.remote
def child(markers: str, i: int) -> None:
    with open(os.path.join(markers, f"child-{i}"), "w") as out:
        out.write(str(os.getpid()))
    time.sleep(300)


@ray.remote(max_retries=0)
def parent(markers: str) -> None:
    refs = [child.remote(markers, i) for i in range(3)]  # two run on the CPUs the blocked parent lends
    with open(os.path.join(markers, "parent"), "w") as out:
        out.write(str(os.getpid()))
    ray.get(refs)


@ray.remote
def one() -> int:
    return 1


def test_the_children_of_a_killed_task_are_cancelled(cluster, tmp_path):
    markers = tmp_path / "children"
    markers.mkdir()
    ref = parent.remote(str(markers))
    assert eventually(lambda: len(os.listdir(markers)) >= 3)  # the parent and two children run
    pids = {name: int((markers / name).read_text()) for name in os.listdir(markers)}
    os.kill(pids.pop("parent"), signal.SIGKILL)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(ref, timeout=60)
    assert eventually(lambda: not any(is_running(pid) for pid in pids.values())), "its children still run"
    assert ray.get([one.remote(), one.remote()], timeout=60) == [1, 1]
    assert "child-2" not in os.listdir(markers)  # the queued child never started

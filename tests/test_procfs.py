"""babyray.procfs against this test process's own /proc entries and those of its children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from babyray import procfs


def _exited_unreaped(child: subprocess.Popen) -> None:
    """Wait for ``child`` to end without collecting it: it stays a zombie until ``wait()``."""
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)


def test_stat_of_this_process():
    me = procfs.stat(os.getpid())
    assert me is not None
    assert (me.pid, me.ppid, me.pgid) == (os.getpid(), os.getppid(), os.getpgrp())
    assert me.state == "R" and not me.zombie  # it is reading its own stat
    assert me.cpu_seconds > 0
    assert procfs.is_running(os.getpid())


def test_a_child_running_then_a_zombie_then_gone():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert procfs.is_running(child.pid)
        assert child.pid in [c.pid for c in procfs.children(os.getpid())]
        assert child.pid in [p.pid for p in procfs.processes()]
        child.stdin.close()
        _exited_unreaped(child)
        zombie = procfs.stat(child.pid)
        assert zombie is not None and zombie.zombie and zombie.ppid == os.getpid()
        assert not procfs.is_running(child.pid)
        assert [c.zombie for c in procfs.children(os.getpid()) if c.pid == child.pid] == [True]
    finally:
        child.kill()
        child.wait()
    assert procfs.stat(child.pid) is None
    assert not procfs.is_running(child.pid)
    assert child.pid not in [c.pid for c in procfs.children(os.getpid())]


def test_group_members_are_the_running_processes_of_a_group():
    # The leader of a new group forks a second member; both block on the pipe, then the
    # leader collects its child and exits.
    code = "import os, sys; pid = os.fork(); sys.stdin.read(); pid and os.waitpid(pid, 0)"
    leader = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(members := procfs.group_members(leader.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the fork happened
        assert leader.pid in members and len(members) == 2
        assert all(procfs.stat(pid).pgid == leader.pid for pid in members)
        assert not set(members) & set(procfs.group_members(os.getpgrp()))
        leader.stdin.close()  # both read end of file and exit
        _exited_unreaped(leader)
        assert procfs.group_members(leader.pid) == []  # the leader is a zombie, its child collected
    finally:
        try:
            os.killpg(leader.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        leader.wait()


def test_network_namespace_names_this_process_namespace():
    assert procfs.network_namespace() == f"net:[{os.stat('/proc/self/ns/net').st_ino}]"


def test_processes_with_environment_finds_a_process_and_its_forks_only_while_they_run():
    # The child forks a grandchild that inherits the environment it started with; a variable
    # set in os.environ afterwards is not in what /proc shows of either.
    tag = f"tag-{os.getpid()}-{time.monotonic_ns()}"
    code = "import os, sys; os.environ['LATER'] = '1'; pid = os.fork(); sys.stdin.read(); pid and os.waitpid(pid, 0)"
    env = {**os.environ, "BABYRAY_TEST_TAG": tag}
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while len(found := procfs.processes_with_environment("BABYRAY_TEST_TAG", tag)) < 2:
            assert time.monotonic() < deadline, found
            time.sleep(0.01)  # until the fork happened
        assert child.pid in found and len(found) == 2
        assert procfs.processes_with_environment("BABYRAY_TEST_TAG", tag + "-other") == []
        assert not set(found) & set(procfs.processes_with_environment("LATER", "1"))
        assert os.getpid() not in found
    finally:
        child.stdin.close()
        child.wait(60)
    assert procfs.processes_with_environment("BABYRAY_TEST_TAG", tag) == []

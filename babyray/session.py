"""The session directory of a cluster: logs, spill files, the SQLite GCS store, and the pid
registry used to make sure no process of the session outlives it.
"""

from __future__ import annotations

import glob
import os
import signal
import time

from babyray import config
from babyray.procfs import group_members

_GROUP_END_WAIT = 10.0  # seconds a killed process group may take to be gone before its files are removed


def new_session_dir(temp_dir: str | None = None) -> str:
    root = config.Settings({"temp_dir": temp_dir}).temp_dir
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(root, f"session_{stamp}_{os.getpid()}_{os.urandom(3).hex()}")
    for sub in ("logs", "pids", "spill"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    return path


def node_output(session_dir: str) -> str:
    """The file a node's processes write their stdout and stderr to when not to a terminal's
    (``babyray start``, ``init(log_to_driver=False)``)."""
    return os.path.join(session_dir, "logs", "node.out")


def register_pid(session_dir: str, component: str) -> None:
    """Record this process so teardown can find it even if Thespian loses track of it."""
    path = os.path.join(session_dir, "pids", f"{os.getpid()}")
    with open(path, "w") as f:
        f.write(component)


def session_pids(session_dir: str) -> list[int]:
    return [int(os.path.basename(p)) for p in glob.glob(os.path.join(session_dir, "pids", "*"))]


def kill_session_processes(session_dir: str, exclude: tuple[int, ...] = ()) -> list[int]:
    """SIGKILL every still-running process registered in the session; return their pids."""
    killed = []
    for pid in session_pids(session_dir):
        if pid in exclude or pid == os.getpid():
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
        try:
            os.unlink(os.path.join(session_dir, "pids", str(pid)))
        except FileNotFoundError:
            pass
    return killed


def end_process_group(pgid: int, grace: float) -> list[int]:
    """Give process group ``pgid`` ``grace`` seconds to end, then SIGKILL what is left of it;
    return the pids killed. The caller must keep the pid ``pgid`` from being reused meanwhile
    (an unreaped child of its own)."""
    deadline = time.monotonic() + grace
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return []
    return left


def reap_child(pid: int, timeout: float = 5.0) -> None:
    """Wait (up to ``timeout`` seconds, then SIGKILL) for this process's child ``pid`` to exit
    and collect it, so it leaves no zombie."""
    deadline = time.monotonic() + timeout
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.02)
    except ChildProcessError:  # collected already, or not a child of this process
        pass


def end_own_group(session_dir: str) -> None:
    """SIGKILL this process's process group, this process among them; then remove the session's
    shared-memory segments (``unlink_session_segments``).

    The group is killed in one ``killpg``, which the kernel makes atomic with a fork under way
    in it, so no process of the group is started too late to be killed. The segments are
    removed once every process of the group is gone (none can create one anymore) by a child
    forked for it and moved into a group of its own first. Safe to call from any thread: the
    child touches no lock.
    """
    group = os.getpgrp()
    remover = os.fork()
    if remover == 0:
        try:
            os.setpgid(0, 0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # the group's stdout may be a pipe that a reader waits to see closed
                os.dup2(devnull, fd)
            deadline = time.monotonic() + _GROUP_END_WAIT
            while group_members(group) and time.monotonic() < deadline:
                time.sleep(0.02)
            unlink_session_segments(session_dir)
        finally:
            os._exit(0)
    try:
        os.setpgid(remover, remover)  # before the kill, whichever of the two gets there first
    except OSError:  # the child did it already and may have exited
        pass
    os.killpg(group, signal.SIGKILL)


def unlink_session_segments(session_dir: str) -> None:
    """Remove the session's /dev/shm segments (a store unlinks its own at once; one killed before
    that leaves it)."""
    prefix = f"babyray_{os.path.basename(session_dir)[-6:]}_"
    for name in os.listdir("/dev/shm"):
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join("/dev/shm", name))
            except FileNotFoundError:
                pass

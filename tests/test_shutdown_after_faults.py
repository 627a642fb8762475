"""shutdown() after worker faults returns promptly and leaves no process, admin or segment."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from conftest import assert_session_clean

import babyray as ray

SHUTDOWN_DEADLINE = 2.0  # the bound issue 12 sets; a clean shutdown takes about 0.3 s


@ray.remote
def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@ray.remote
def short(i: int) -> int:
    time.sleep(0.01)
    return i


@ray.remote
def hold_the_gil() -> int:
    return sum(range(10**13))  # one C loop: the worker's actor loop never runs again


def _worker_pids(n: int) -> list[int]:
    return sorted(set(ray.get([pid_after.remote(0.5) for _ in range(2 * n)], timeout=60)))


def _admin_listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def _shutdown_and_check(info: dict) -> None:
    started = time.monotonic()
    ray.shutdown()
    took = time.monotonic() - started
    assert took < SHUTDOWN_DEADLINE, f"shutdown took {took:.1f} s"
    assert_session_clean(info["session_dir"])
    deadline = time.monotonic() + 3  # the admin closes its port just after it answers
    while _admin_listening(info["address"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _admin_listening(info["address"]), "the cluster's admin outlived shutdown"


@pytest.mark.parametrize("killed", [2, 3])
def test_shutdown_after_workers_sigkilled_together(tmp_path, killed):
    info = ray.init(num_cpus=3, temp_dir=str(tmp_path)).address_info
    try:
        pids = _worker_pids(3)
        refs = [short.remote(i) for i in range(200)]
        time.sleep(0.3)
        for pid in pids[:killed]:
            os.kill(pid, signal.SIGKILL)
        assert ray.get(refs, timeout=60) == list(range(200))
    finally:
        _shutdown_and_check(info)


def test_shutdown_with_a_worker_holding_the_gil(tmp_path):
    info = ray.init(num_cpus=2, temp_dir=str(tmp_path)).address_info
    try:
        hold_the_gil.remote()
        time.sleep(1.0)
    finally:
        _shutdown_and_check(info)


def test_shutdown_with_a_stopped_worker(tmp_path):
    info = ray.init(num_cpus=2, temp_dir=str(tmp_path)).address_info
    try:
        os.kill(_worker_pids(2)[0], signal.SIGSTOP)
    finally:
        _shutdown_and_check(info)


def _session_pid(session_dir: str, component: str) -> int:
    for name in os.listdir(os.path.join(session_dir, "pids")):
        with open(os.path.join(session_dir, "pids", name)) as f:
            if f.read().strip() == component:
                return int(name)
    raise AssertionError(f"no {component} registered in {session_dir}")


@pytest.mark.parametrize("part", ["local_scheduler", "object_store"])
def test_shutdown_with_a_stopped_part(tmp_path, part):
    """A part that cannot answer (the store never acknowledges its shutdown, the admin never
    confirms): shutdown waits neither the store's nor Thespian's timeout, and the admin, its
    logger and the parts are killed."""
    info = ray.init(num_cpus=2, temp_dir=str(tmp_path)).address_info
    try:
        assert ray.get(short.remote(1), timeout=60) == 1
        os.kill(_session_pid(info["session_dir"], part), signal.SIGSTOP)
    finally:
        _shutdown_and_check(info)

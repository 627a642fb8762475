"""shutdown() after worker faults returns promptly and leaves no process, admin or segment."""
from __future__ import annotations

import os
import signal
import socket
import time

import pytest

import babyray as ray
from conftest import assert_session_clean

SHUTDOWN_DEADLINE = 10.0  # generous on a shared machine; about 1 s is typical


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
    info = ray.init(num_cpus=3, temp_dir=str(tmp_path))
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
    info = ray.init(num_cpus=2, temp_dir=str(tmp_path))
    try:
        hold_the_gil.remote()
        time.sleep(1.0)
    finally:
        _shutdown_and_check(info)


def test_shutdown_with_a_stopped_worker(tmp_path):
    info = ray.init(num_cpus=2, temp_dir=str(tmp_path))
    try:
        os.kill(_worker_pids(2)[0], signal.SIGSTOP)
    finally:
        _shutdown_and_check(info)

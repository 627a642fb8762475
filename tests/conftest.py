"""Shared fixtures: real babyray clusters on free 127.0.0.1 ports, checked for leaks.

Every cluster a test starts must be gone when it ends: no process of its session, no
shared-memory segment, no listening socket of its admin.
"""

from __future__ import annotations

import glob
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import babyray  # noqa: E402
from babyray.procfs import is_running  # noqa: E402
from babyray.session import session_pids  # noqa: E402


def assert_session_clean(session_dir: str) -> None:
    """No process, shared-memory segment or admin of the session is left."""
    left = [pid for pid in session_pids(session_dir) if is_running(pid)]
    assert not left, f"processes left running by the session: {left}"
    tag = os.path.basename(session_dir)[-6:]
    segments = glob.glob(f"/dev/shm/babyray_{tag}_*")
    assert not segments, f"shared-memory segments left: {segments}"


def wait_for_file(path: str, timeout: float = 60) -> None:
    """Until ``path`` exists (a process under test made it); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def eventually(predicate, timeout: float = 30.0) -> bool:
    """Whether ``predicate()`` comes true within ``timeout`` seconds (asked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def cluster(tmp_path):
    """A fresh private 2-CPU cluster for one test; yields its ``address_info`` (see init())."""
    info = babyray.init(
        num_cpus=2, temp_dir=str(tmp_path), object_store_memory=256 * 1024 * 1024
    ).address_info
    try:
        yield info
    finally:
        babyray.shutdown()
    assert_session_clean(info["session_dir"])


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """One 2-CPU cluster shared by a module's tests that do not disturb it; yields its
    ``address_info``."""
    tmp = tmp_path_factory.mktemp("cluster")
    info = babyray.init(
        num_cpus=2, resources={"custom": 1}, temp_dir=str(tmp), object_store_memory=256 * 1024 * 1024
    ).address_info
    try:
        yield info
    finally:
        babyray.shutdown()
    assert_session_clean(info["session_dir"])

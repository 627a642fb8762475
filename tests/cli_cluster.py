"""Clusters started with the ``babyray`` command on 127.0.0.1, and driver scripts run against
them, for the tests that need separate processes: the command's environment, starting a head
or a member, running a driver script, and stopping everything with nothing left running."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from babyray.cluster import free_port
from babyray.procfs import processes_with_environment

ROOT = Path(__file__).resolve().parents[1]


def cli_env(temp_dir: Path, **extra: str) -> dict:
    """The environment of commands and drivers of a cluster whose sessions and node records
    live under ``temp_dir``: no inherited BABYRAY_ADDRESS, ``extra`` variables set."""
    env = dict(os.environ, BABYRAY_TEMP_DIR=str(temp_dir), PYTHONPATH=str(ROOT), **extra)
    env.pop("BABYRAY_ADDRESS", None)
    return env


def cli(env: dict, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """``babyray *args``; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "babyray.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def start_args(port: int, num_cpus: int, *extra: str, head: str | None = None) -> tuple[str, ...]:
    """The arguments of ``babyray start`` for a node on 127.0.0.1:``port``: a head, or a
    member of the cluster whose head is ``head``."""
    joining = ("--address", head) if head else ("--head",)
    return (
        "start",
        *joining,
        "--port",
        str(port),
        "--node-ip",
        "127.0.0.1",
        "--num-cpus",
        str(num_cpus),
        *extra,
    )


def start(
    env: dict, port: int, num_cpus: int, *extra: str, head: str | None = None
) -> subprocess.CompletedProcess:
    """Start a node (see ``start_args``); asserts that it started."""
    started = cli(env, *start_args(port, num_cpus, *extra, head=head))
    assert started.returncode == 0, started.stdout + started.stderr
    return started


def run_driver(
    script: Path, *args: str, env: dict, timeout: float = 120, expect: str | None = None
) -> subprocess.CompletedProcess:
    """Run the driver script ``script`` with ``args``; with ``expect``, assert that it succeeded
    and printed that."""
    run = subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if expect is not None:
        assert run.returncode == 0 and expect in run.stdout, run.stdout + run.stderr[-4000:]
    return run


def processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if "pgrep" not in line]


def _left_running(directory: Path) -> list[str]:
    """Processes of the nodes and drivers started with ``directory`` as their temp dir (in
    their environment, as ``cli_env`` sets it, or on their command line)."""
    started_there = [str(pid) for pid in processes_with_environment("BABYRAY_TEMP_DIR", str(directory))]
    return started_there + processes_mentioning(str(directory))


def assert_gone(directory: Path, seconds: float = 10) -> None:
    """No process started with ``directory`` as its temp dir is left within ``seconds``."""
    deadline = time.monotonic() + seconds
    while _left_running(directory) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _left_running(directory)


def stop_all(env: dict, directory: Path) -> subprocess.CompletedProcess:
    """``babyray stop``, then check nothing started under ``directory`` is left running."""
    stop = cli(env, "stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert_gone(directory)
    return stop


@contextlib.contextmanager
def running_head(temp_dir: Path, num_cpus: int = 2) -> Iterator[tuple[str, dict]]:
    """A one-node cluster started with ``babyray start --head`` under ``temp_dir``: (its
    address, the environment of its commands and drivers); stopped, with nothing left, after."""
    env = cli_env(temp_dir)
    port = free_port()
    try:
        start(env, port, num_cpus)
        yield f"127.0.0.1:{port}", env
    finally:
        stop_all(env, temp_dir)

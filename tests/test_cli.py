"""The babyray command on one host: a head and a member on 127.0.0.1 (different admin
and data-plane ports), status, a driver joining by address, and stop leaving nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from babyray.cluster import free_port

ROOT = Path(__file__).resolve().parents[1]


def _cli(env: dict, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "babyray.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if "pgrep" not in line]


def _assert_gone(directory: Path, seconds: float = 10) -> None:
    """No process mentions ``directory`` (the temp dir of the nodes started) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while _processes_mentioning(str(directory)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_mentioning(str(directory))


def _stop_all(env: dict, directory: Path) -> subprocess.CompletedProcess:
    """``babyray stop``, then check nothing started under ``directory`` is left running."""
    stop = _cli(env, "stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    _assert_gone(directory)
    return stop


DRIVER = """
import sys, babyray as ray
ray.init(address=sys.argv[1])
assert len([n for n in ray.nodes() if n["Alive"]]) == 2, ray.nodes()
@ray.remote
def f(x):
    return x * 2
assert ray.get([f.remote(i) for i in range(6)], timeout=60) == [0, 2, 4, 6, 8, 10]
@ray.remote(resources={"special": 1})
def where():
    return ray.get_runtime_context().get_node_id()
special = [n["NodeID"] for n in ray.nodes() if "special" in n["Resources"]]
assert ray.get(where.remote(), timeout=60) == special[0]
import numpy as np
a = np.arange(3_000_000)
assert (ray.get(ray.put(a)) == a).all()
ray.shutdown()
print("DRIVER OK")
"""


def test_start_status_driver_and_stop_on_localhost_leave_no_process(tmp_path):
    env = dict(os.environ, BABYRAY_TEMP_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    env.pop("BABYRAY_ADDRESS", None)
    head_port, member_port = free_port(), free_port()
    address = f"127.0.0.1:{head_port}"
    try:
        head = _cli(
            env, "start", "--head", "--port", str(head_port), "--node-ip", "127.0.0.1", "--num-cpus", "2"
        )
        assert head.returncode == 0, head.stdout + head.stderr
        assert head.stdout.strip().splitlines()[-1] == address
        member = _cli(
            env,
            "start",
            "--address",
            address,
            "--port",
            str(member_port),
            "--node-ip",
            "127.0.0.1",
            "--num-cpus",
            "1",
            "--resources",
            '{"special": 1}',
        )
        assert member.returncode == 0, member.stdout + member.stderr
        status = _cli(env, "status", "--address", address)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "2 alive node(s)" in status.stdout and "special 1/1" in status.stdout, status.stdout
        driver = tmp_path / "driver.py"
        driver.write_text(DRIVER)
        run = subprocess.run(
            [sys.executable, str(driver), address], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0 and "DRIVER OK" in run.stdout, run.stdout + run.stderr
    finally:
        stop = _cli(env, "stop")
    assert stop.returncode == 0 and "stopped head" in stop.stdout and "stopped member" in stop.stdout, (
        stop.stdout
    )
    _assert_gone(tmp_path)
    assert not list((tmp_path / "nodes").glob("*.json"))
    tags = [p.name[-6:] for p in tmp_path.glob("session_*")]
    assert not [s for s in os.listdir("/dev/shm") if any(t in s for t in tags)]

"""Objects whose owner died are freed from the stores, as in Ray: nobody can read them again
(their borrowers get OwnerDiedError), so the bytes go, primary copies and copies still being
written alike. Before, a killed actor's 64 MB put stayed in its node's store for the node's
life. Objects the dead process only wrote, for an owner still alive, stay."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from cli_cluster import run_driver, running_head
from conftest import eventually

import babyray as ray

MB = 1 << 20
SIZE = 64 * MB
TIMEOUT = 30


def _used() -> int:
    return ray.memory_stats()[0]["used_bytes"]


@ray.remote(max_restarts=0)
class Keeper:
    """Holds a ref it owns: a put, or the return of a task it submitted."""

    def keep_put(self) -> int:
        self.ref = ray.put(np.ones(SIZE, dtype=np.uint8))
        return os.getpid()

    def keep_task_return(self) -> int:
        self.ref = big.remote()
        ray.wait([self.ref], fetch_local=False, timeout=TIMEOUT)
        return os.getpid()


@ray.remote
def big() -> np.ndarray:
    return np.ones(SIZE, dtype=np.uint8)


@ray.remote
def big_and_pid() -> tuple:
    return np.ones(SIZE, dtype=np.uint8), os.getpid()


@ray.remote(max_restarts=0)
class AsyncMaker:
    async def make(self) -> np.ndarray:
        return np.full(SIZE, 3, dtype=np.uint8)

    def pid(self) -> int:
        return os.getpid()


@pytest.mark.parametrize("kill", ["sigkill", "ray_kill"])
@pytest.mark.parametrize("kept", ["put", "task_return"])
def test_the_objects_of_a_killed_actor_are_freed(cluster, kill, kept):
    before = _used()
    keeper = Keeper.remote()
    pid = ray.get(getattr(keeper, f"keep_{kept}").remote(), timeout=TIMEOUT)
    assert eventually(lambda: _used() >= before + SIZE)
    if kill == "sigkill":
        os.kill(pid, signal.SIGKILL)
    else:
        ray.kill(keeper)
    assert eventually(lambda: _used() == before), f"{_used() - before} bytes of the dead owner stay"
    assert ray.get(big.remote(), timeout=TIMEOUT).shape == (SIZE,)  # the cluster goes on


def test_a_return_a_killed_worker_wrote_for_a_live_owner_stays(cluster):
    ref = big_and_pid.remote()
    value, pid = ray.get(ref, timeout=TIMEOUT)
    del value
    os.kill(pid, signal.SIGKILL)
    time.sleep(2)  # the death reaches the GCS and the stores
    again, _ = ray.get(ref, timeout=TIMEOUT)
    assert again.shape == (SIZE,) and again[-1] == 1


def test_an_async_actors_return_for_a_live_owner_survives_the_actor(cluster):
    maker = AsyncMaker.remote()
    pid = ray.get(maker.pid.remote(), timeout=TIMEOUT)
    ref = maker.make.remote()
    ray.wait([ref], timeout=TIMEOUT, fetch_local=False)
    os.kill(pid, signal.SIGKILL)
    time.sleep(2)
    assert ray.get(ref, timeout=TIMEOUT)[-1] == 3


# ---- the owner is a driver that joined a running cluster ----------------------------------

CHECKER = """
import subprocess, sys, time, babyray as ray
address, owner_script = sys.argv[1:3]
ray.init(address=address)
used = lambda: ray.memory_stats()[0]["used_bytes"]
before = used()
owner = subprocess.run([sys.executable, owner_script, address], timeout=60)
assert owner.returncode == -9, owner.returncode
deadline = time.monotonic() + 30
while used() != before and time.monotonic() < deadline:
    time.sleep(0.1)
print("LEFT", used() - before)
ray.shutdown()
"""

OWNER = """
import os, signal, sys, numpy as np, babyray as ray
ray.init(address=sys.argv[1])
ref = ray.put(np.ones(64 << 20, dtype=np.uint8))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_drivers_puts_are_freed_from_the_cluster(tmp_path):
    checker, owner = tmp_path / "checker.py", tmp_path / "owner.py"
    checker.write_text(CHECKER)
    owner.write_text(OWNER)
    with running_head(tmp_path) as (address, env):
        run = run_driver(checker, address, str(owner), env=env, timeout=120, expect="LEFT")
    assert run.stdout.split("LEFT", 1)[1].strip() == "0", run.stdout + run.stderr[-3000:]

"""A borrowed object whose owner died: ``get`` raises OwnerDiedError (an ObjectLostError), as in
Ray's fault-tolerance docs, instead of waiting for an answer that can never come."""

from __future__ import annotations

import os
import signal

import pytest
from cli_cluster import run_driver, running_head

import babyray as ray

TIMEOUT = 60


@ray.remote
def put_and_return_ref():
    return ray.put(1), os.getpid()


@ray.remote
def one() -> int:
    return 1


@ray.remote
def submit_and_return_ref():
    return one.remote(), os.getpid()


@pytest.mark.parametrize("maker", [put_and_return_ref, submit_and_return_ref], ids=["put", "remote"])
def test_get_of_an_object_whose_owner_died_raises_owner_died(cluster, maker):
    ref, owner_pid = ray.get(maker.remote(), timeout=TIMEOUT)
    os.kill(owner_pid, signal.SIGKILL)
    with pytest.raises(ray.exceptions.OwnerDiedError, match="owner") as raised:
        ray.get(ref, timeout=TIMEOUT)
    assert isinstance(raised.value, ray.exceptions.ObjectLostError)
    ready, _ = ray.wait([ref], timeout=TIMEOUT)
    assert ready == [ref]  # an error is a value: the ref is ready, as in Ray
    assert ray.get(one.remote(), timeout=TIMEOUT) == 1  # the cluster goes on


def test_a_value_fetched_before_the_owner_died_stays_readable(cluster):
    ref, owner_pid = ray.get(put_and_return_ref.remote(), timeout=TIMEOUT)
    assert ray.get(ref, timeout=TIMEOUT) == 1
    os.kill(owner_pid, signal.SIGKILL)
    assert ray.get(ref, timeout=TIMEOUT) == 1


# ---- the owner is a driver -------------------------------------------------------------------

CHECKER = """
import subprocess, sys, babyray as ray
address, how, ending = sys.argv[1:4]
ray.init(address=address, namespace="owners")

@ray.remote(num_cpus=0)
class Keeper:
    def __init__(self):
        self.refs = []
    def keep(self, refs):
        self.refs = refs
    def fetch(self):
        try:
            return "value", ray.get(self.refs[0], timeout=50)
        except Exception as error:
            return "error", type(error).__name__, isinstance(error, ray.exceptions.ObjectLostError)

keeper = Keeper.options(name=f"keeper-{how}-{ending}", lifetime="detached").remote()
owner = subprocess.run([sys.executable, sys.argv[4], address, how, ending, f"keeper-{how}-{ending}"], timeout=60)
assert owner.returncode == (-9 if ending == "sigkill" else 0), owner.returncode
print("FETCHED", ray.get(keeper.fetch.remote(), timeout=60))
ray.kill(keeper)
ray.shutdown()
"""

OWNER = """
import os, signal, sys, time, babyray as ray
address, how, ending, keeper_name = sys.argv[1:5]
ray.init(address=address, namespace="owners")

@ray.remote
def slow():
    time.sleep(40)
    return "late"

ref = ray.put("put by the driver") if how == "put" else slow.remote()
ray.get(ray.get_actor(keeper_name).keep.remote([ref]), timeout=60)
if ending == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
ray.shutdown()
"""


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A one-node cluster started with ``babyray start --head``: (address, env, its temp dir)."""
    tmp_path = tmp_path_factory.mktemp("owners")
    with running_head(tmp_path) as (address, env):
        yield address, env, tmp_path


@pytest.mark.parametrize("ending", ["shutdown", "sigkill"])
@pytest.mark.parametrize("how", ["put", "remote"])
def test_a_ref_borrowed_from_a_driver_that_ended_raises_owner_died(head, how, ending):
    """Ray's docs: the owner is the process that made the ref; a driver is one too. Once it has
    gone (shut down or killed), a borrower's ``get`` fails with OwnerDiedError rather than
    waiting for an answer that can never come, whether or not the value exists somewhere."""
    address, env, tmp_path = head
    checker, owner = tmp_path / "checker.py", tmp_path / "owner.py"
    checker.write_text(CHECKER)
    owner.write_text(OWNER)
    run = run_driver(checker, address, how, ending, str(owner), env=env, timeout=150, expect="FETCHED")
    fetched = run.stdout.split("FETCHED", 1)[1].strip()
    assert fetched == "('error', 'OwnerDiedError', True)", run.stdout + run.stderr[-3000:]

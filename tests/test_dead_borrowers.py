"""A process that borrows a ref and dies never says it let go (no RemoveBorrowers): its owner
asks the GCS which of its borrowers died, drops them, and frees what nobody else holds."""

from __future__ import annotations

import ctypes
import os
import signal
import time

import numpy as np
import pytest
from conftest import assert_session_clean
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.api.memory import memory_stats

MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    info = ray.init(num_cpus=1, temp_dir=str(tmp_path_factory.mktemp("dead_borrowers")))
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info.address_info["session_dir"])


def _die(how: str) -> None:
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    ctypes.string_at(0)  # segfault


@ray.remote(max_retries=0)
def borrow_and_die(refs: list, how: str) -> None:
    kept = refs  # a live ref in the worker: it is a borrower now
    ray.get(refs[0])  # asked of the owner after the borrower's registration: both arrived
    _die(how)
    print(kept)


def _in_store(oid: str) -> bool:
    return oid in memory_stats(objects=True)[0]["objects"]


@pytest.mark.parametrize("how", ["exit", "kill", "segfault"])
def test_an_object_a_dead_worker_borrowed_is_freed_with_its_owners_ref(cluster, how):
    ref = ray.put(np.ones(MB // 8))
    oid = ref.hex()
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(borrow_and_die.remote([ref], how), timeout=60)
    del ref
    wait_until(lambda: not _in_store(oid), 15, f"the object freed after its borrower's {how}")


def test_a_live_borrower_still_keeps_the_object(cluster):
    @ray.remote
    class Keeper:
        def keep(self, refs: list) -> int:
            self.refs = refs
            return len(refs)

    ref = ray.put(np.ones(MB // 8))
    oid = ref.hex()
    keeper = Keeper.remote()
    assert ray.get(keeper.keep.remote([ref]), timeout=60) == 1
    with pytest.raises(ray.exceptions.WorkerCrashedError):  # another borrower dies meanwhile
        ray.get(borrow_and_die.remote([ref], "exit"), timeout=60)
    del ref
    deadline = time.monotonic() + 4.5  # past two of the owner's checks
    while time.monotonic() < deadline:
        assert _in_store(oid), "freed while a live borrower held it"
        time.sleep(0.1)
    assert ray.get(keeper.keep.remote([]), timeout=60) == 0  # the keeper lets go
    wait_until(lambda: not _in_store(oid), 15, "the object freed once its last borrower let go")
    ray.kill(keeper)

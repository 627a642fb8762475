"""A borrowed object whose owner died: ``get`` raises OwnerDiedError (an ObjectLostError), as in
Ray's fault-tolerance docs, instead of waiting for an answer that can never come."""

from __future__ import annotations

import os
import signal

import pytest

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

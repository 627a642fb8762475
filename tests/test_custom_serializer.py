"""ray.util.register_serializer / deregister_serializer, as Ray documents them: a class whose
instances do not pickle (they hold a lock) travels through put/get, task arguments and return
values once registered, in the process that registered it only."""

from __future__ import annotations

import os
import threading
from typing import Any, Iterator

import pytest
from conftest import assert_session_clean

import babyray as ray
from babyray.util import serialization as util_serialization

TIMEOUT = 60


class Locked:
    """Does not pickle: it holds a lock."""

    def __init__(self, x: Any) -> None:
        self.x = x
        self.lock = threading.Lock()


class Unregistered(Locked):
    """A subclass: a registration for Locked does not cover it (pickle looks up the exact class)."""


def to_x(value: Locked) -> Any:
    return value.x


def from_x(x: Any) -> Locked:
    return Locked(x)


def register() -> None:
    ray.util.register_serializer(Locked, serializer=to_x, deserializer=from_x)


@ray.remote
def describe(value: Any) -> tuple[str, Any, bool]:
    return type(value).__name__, value.x, isinstance(value.lock, type(threading.Lock()))


@ray.remote
def make(x: Any, register_here: bool) -> Locked:
    if register_here:
        register()
    return Locked(x)


@pytest.fixture
def deregistered() -> Iterator[None]:
    """The driver's registration for Locked is gone after the test, whatever it did."""
    try:
        yield
    finally:
        ray.util.deregister_serializer(Locked)


def _fails_to_serialize(call: Any) -> None:
    with pytest.raises(
        TypeError, match=r"Could not serialize Locked value.*cannot pickle '_thread.lock' object"
    ):
        call()


# ---- the API without a cluster ---------------------------------------------------------------


def test_both_spellings_are_the_same_functions() -> None:
    assert ray.util.register_serializer is util_serialization.register_serializer
    assert ray.util.deregister_serializer is util_serialization.deregister_serializer
    assert ray.util.serialization is util_serialization


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: ray.util.register_serializer(Locked(1), serializer=to_x, deserializer=from_x),
            "cls must be a class, not Locked",
        ),
        (
            lambda: ray.util.register_serializer("Locked", serializer=to_x, deserializer=from_x),
            "cls must be a class, not str",
        ),
        (
            lambda: ray.util.register_serializer(Locked, serializer=1, deserializer=from_x),
            "serializer must be callable, not int",
        ),
        (
            lambda: ray.util.register_serializer(Locked, serializer=to_x, deserializer="A"),
            "deserializer must be callable, not str",
        ),
        (lambda: ray.util.deregister_serializer(None), "cls must be a class, not NoneType"),
    ],
)
def test_bad_input_is_refused_naming_the_cause(call: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call()


def test_serializer_and_deserializer_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ray.util.register_serializer(Locked, to_x, from_x)  # type: ignore[misc]


# ---- workers: their own registrations (a private cluster of its own) --------------------------


def test_workers_keep_their_own_registrations(tmp_path) -> None:
    """Runs before the tests of the shared cluster (one cluster at a time).

    Registered before init() (a private cluster's processes are forked from the driver):
    still a worker returns the class only after registering it itself, as Ray documents."""
    register()
    info = ray.init(num_cpus=1, temp_dir=str(tmp_path), object_store_memory=128 * 1024 * 1024).address_info
    try:
        assert ray.get(describe.remote(Locked(0)), timeout=TIMEOUT) == ("Locked", 0, True)
        with pytest.raises(TypeError, match="cannot pickle '_thread.lock' object") as failed:
            ray.get(make.remote(1, False), timeout=TIMEOUT)
        assert isinstance(failed.value, ray.exceptions.RayTaskError)
        back = ray.get(make.remote(2, True), timeout=TIMEOUT)
        assert type(back) is Locked and back.x == 2
        ray.util.deregister_serializer(Locked)
        _fails_to_serialize(lambda: describe.remote(Locked(3)))
    finally:
        ray.util.deregister_serializer(Locked)
        ray.shutdown()
    assert_session_clean(info["session_dir"])


# ---- the driver: put and get -----------------------------------------------------------------


def test_the_documented_sequence_fails_succeeds_and_fails_again(
    shared_cluster: dict, deregistered: None
) -> None:
    _fails_to_serialize(lambda: ray.put(Locked(1)))
    register()
    back = ray.get(ray.put(Locked(1)), timeout=TIMEOUT)
    assert type(back) is Locked and back.x == 1 and back.lock.acquire(blocking=False)
    ray.util.deregister_serializer(Locked)
    _fails_to_serialize(lambda: ray.put(Locked(1)))
    ray.util.deregister_serializer(Locked)  # nothing registered: nothing happens


def test_registered_values_inside_containers_and_large_values(
    shared_cluster: dict, deregistered: None
) -> None:
    register()
    nested = ray.get(ray.put({"a": [Locked(1), (Locked("two"),)]}), timeout=TIMEOUT)
    assert [nested["a"][0].x, nested["a"][1][0].x] == [1, "two"]
    payload = os.urandom(4 * 1024 * 1024)  # past the inline threshold: through the object store
    assert ray.get(ray.put(Locked(payload)), timeout=TIMEOUT).x == payload


def test_a_refused_registration_leaves_the_earlier_one(shared_cluster: dict, deregistered: None) -> None:
    register()
    with pytest.raises(TypeError):
        ray.util.register_serializer(Locked, serializer=to_x, deserializer=None)  # type: ignore[arg-type]
    assert ray.get(ray.put(Locked(3)), timeout=TIMEOUT).x == 3


def test_a_subclass_is_not_covered(shared_cluster: dict, deregistered: None) -> None:
    register()
    with pytest.raises(TypeError, match="Could not serialize Unregistered value"):
        ray.put(Unregistered(1))


def test_registering_again_replaces_the_serializer(shared_cluster: dict, deregistered: None) -> None:
    register()
    ray.util.register_serializer(Locked, serializer=lambda v: v.x * 10, deserializer=lambda x: Locked(x + 1))
    assert ray.get(ray.put(Locked(1)), timeout=TIMEOUT).x == 11
    assert ray.get(describe.remote(Locked(2)), timeout=TIMEOUT) == ("Locked", 21, True)
    register()  # the same pair again: back to the plain round trip
    assert ray.get(ray.put(Locked(1)), timeout=TIMEOUT).x == 1


def test_a_serializer_that_raises_fails_the_put_naming_its_error(
    shared_cluster: dict, deregistered: None
) -> None:
    def broken(value: Locked) -> Any:
        raise ValueError("no way to write this one")

    ray.util.register_serializer(Locked, serializer=broken, deserializer=from_x)
    with pytest.raises(
        TypeError, match="Could not serialize Locked value: ValueError.*no way to write this one"
    ):
        ray.put(Locked(1))


# ---- tasks: arguments and return values ------------------------------------------------------


def test_task_arguments_need_the_registration_of_the_submitter_only(
    shared_cluster: dict, deregistered: None
) -> None:
    _fails_to_serialize(lambda: describe.remote(Locked(1)))
    register()
    assert ray.get(describe.remote(Locked(1)), timeout=TIMEOUT) == ("Locked", 1, True)
    big = os.urandom(1024 * 1024)
    assert ray.get(describe.remote(Locked(big)), timeout=TIMEOUT) == ("Locked", big, True)
    ray.util.deregister_serializer(Locked)
    _fails_to_serialize(lambda: describe.remote(Locked(1)))


def test_inspect_serializability_counts_a_registered_serializer(deregistered: None, capsys) -> None:
    ok, failures = ray.util.inspect_serializability(Locked(1), name="locked")
    assert not ok and failures
    register()
    ok, failures = ray.util.inspect_serializability(Locked(1), name="locked")
    assert ok and not failures
    assert "FAIL" in capsys.readouterr().out  # the first search printed the failure

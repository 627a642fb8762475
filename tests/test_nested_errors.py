"""A task's error keeps the user's exception class through nested gets and failed arguments."""

from __future__ import annotations

import pytest

import babyray as ray
from babyray.exceptions import RayTaskError, TaskCancelledError


class Custom(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"custom error {code}")
        self.code = code


@ray.remote
def divide_by_zero() -> float:
    return 1 / 0


@ray.remote
def raise_custom() -> None:
    raise Custom(7)


@ray.remote
def nest(depth: int, kind: str) -> object:
    """Fail at the innermost of ``depth`` tasks, each one ``get``-ting the next."""
    if depth == 1:
        return ray.get((divide_by_zero if kind == "zero" else raise_custom).remote(), timeout=60)
    return ray.get(nest.remote(depth - 1, kind), timeout=60)


@ray.remote
def add_one(x: int) -> int:
    return x + 1


@ray.remote
class Holder:
    def fail_nested(self) -> None:
        ray.get(nest.remote(2, "zero"), timeout=60)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_nested_error_keeps_class_and_every_traceback(shared_cluster, depth):
    with pytest.raises(ZeroDivisionError) as info:
        ray.get(nest.remote(depth, "zero"), timeout=120)
    err = info.value
    assert isinstance(err, RayTaskError)
    assert isinstance(err.cause, ZeroDivisionError)
    text = str(err)
    assert "division by zero" in text
    assert "in divide_by_zero" in text  # the innermost remote traceback
    assert text.count("in nest") == depth  # and one frame per nesting task


def test_nested_user_exception_keeps_its_fields(shared_cluster):
    with pytest.raises(Custom) as info:
        ray.get(nest.remote(3, "custom"), timeout=120)
    assert isinstance(info.value, RayTaskError)
    assert info.value.cause.code == 7


def test_nested_error_through_actor_method(shared_cluster):
    holder = Holder.remote()
    with pytest.raises(ZeroDivisionError) as info:
        ray.get(holder.fail_nested.remote(), timeout=120)
    assert isinstance(info.value, RayTaskError)
    ray.kill(holder)


def test_failed_argument_is_reported_as_input_error(shared_cluster):
    chained = add_one.remote(add_one.remote(divide_by_zero.remote()))
    with pytest.raises(ZeroDivisionError) as info:
        ray.get(chained, timeout=60)
    err = info.value
    assert isinstance(err, RayTaskError)
    assert err.function_name.endswith("add_one")
    assert "At least one of the input arguments for this task could not be computed" in str(err)
    assert "in divide_by_zero" in str(err)


def test_cancelled_argument_is_reported_as_input_error(shared_cluster):
    @ray.remote
    def sleep_long() -> None:
        import time

        time.sleep(60)

    blocked = sleep_long.remote()
    ray.cancel(blocked, force=True)
    with pytest.raises(TaskCancelledError) as info:
        ray.get(add_one.remote(blocked), timeout=60)
    assert isinstance(info.value, RayTaskError)
    assert "input arguments" in str(info.value)

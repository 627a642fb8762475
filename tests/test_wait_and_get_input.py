"""What ``wait`` and ``get`` take, as Ray's own checks decide it: a bad argument is refused with
Ray's exception type before anything waits, and the cluster goes on serving."""

from __future__ import annotations

import pytest

import babyray as ray


@ray.remote
def echo(x):
    return x


def test_wait_on_an_empty_list_returns_two_empty_lists_at_once(shared_cluster):
    assert ray.wait([]) == ([], [])
    assert ray.wait([], num_returns=3, timeout=0) == ([], [])


@pytest.mark.parametrize(
    ("arguments", "error", "says"),
    [
        ({"timeout": -1}, ValueError, "timeout must be nonnegative"),
        ({"num_returns": 0}, ValueError, "num_returns must be from 1 to 2"),
        ({"num_returns": -1}, ValueError, "num_returns must be from 1 to 2"),
        ({"num_returns": 3}, ValueError, "num_returns must be from 1 to 2"),
    ],
)
def test_wait_refuses_a_bad_timeout_or_count(shared_cluster, arguments, error, says):
    refs = [echo.remote(1), echo.remote(2)]
    with pytest.raises(error, match=says):
        ray.wait(refs, **arguments)
    assert ray.wait(refs, num_returns=2, timeout=60)[0] == refs


def test_wait_refuses_what_is_not_a_list_of_refs(shared_cluster):
    ref = echo.remote(1)
    with pytest.raises(TypeError, match="got a single ObjectRef"):
        ray.wait(ref)
    with pytest.raises(TypeError, match="got set"):
        ray.wait({ref})
    with pytest.raises(TypeError, match="a list containing int: 3"):
        ray.wait([ref, 3])
    with pytest.raises(ValueError, match="unique object refs"):
        ray.wait([ref, ref])
    assert ray.get(ref, timeout=60) == 1


def test_get_refuses_what_is_not_a_ref_or_a_list_of_refs(shared_cluster):
    ref = echo.remote("kept")
    for bad in ("notaref", [1, 2], {"a": ref}):
        with pytest.raises(ValueError, match="'get' expects an ObjectRef or a list of ObjectRefs"):
            ray.get(bad)
    assert ray.get([ref], timeout=60) == ["kept"]

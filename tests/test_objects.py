"""Objects through the public API: put/get, numpy zero-copy, errors."""

from __future__ import annotations

import numpy as np
import pytest

import babyray as ray


@ray.remote
def total(array):
    return float(array.sum())


@ray.remote
def make_array(n):
    return np.ones(n, dtype=np.float64)


def test_put_then_get_returns_the_value(shared_cluster):
    assert ray.get(ray.put({"a": [1, 2, 3]})) == {"a": [1, 2, 3]}


def test_put_of_an_object_ref_raises_type_error(shared_cluster):
    ref = ray.put(1)
    with pytest.raises(TypeError, match="ObjectRef"):
        ray.put(ref)


def test_large_numpy_array_comes_back_read_only_without_a_copy(shared_cluster):
    array = np.arange(4_000_000, dtype=np.int64)
    ref = ray.put(array)
    first, second = ray.get(ref), ray.get(ref)
    assert not first.flags.writeable
    assert np.array_equal(first, array)
    assert np.shares_memory(first, second)  # both are views of the same shared-memory slot


@pytest.mark.parametrize(
    "dtype",
    [
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "bool",
    ],
)
def test_numpy_values_of_every_dtype_round_trip_intact(shared_cluster, dtype):
    rng = np.random.default_rng(0)
    array = (rng.random(300_000) * 100).astype(dtype)
    assert np.array_equal(ray.get(ray.put(array)), array)


def test_large_array_argument_and_result_travel_through_the_store(shared_cluster):
    array = np.ones(5_000_000)
    assert ray.get(total.remote(array)) == 5_000_000.0
    result = ray.get(make_array.remote(3_000_000))
    assert result.shape == (3_000_000,) and not result.flags.writeable


def test_put_ref_passed_to_a_task_is_resolved(shared_cluster):
    ref = ray.put(np.full(1000, 2.0))
    assert ray.get(total.remote(ref)) == 2000.0

"""``get`` of a numpy array in the node's store: a read-only view of its shared-memory slot, which
stays pinned (never evicted, spilled or reused) while the array or any view of it lives, and is
released once they are all gone."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
from conftest import assert_session_clean
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.api.held_pins import IDLE_SECONDS
from babyray.api.memory import memory_stats

MB = 1024 * 1024


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    info = ray.init(
        num_cpus=1, temp_dir=str(tmp_path_factory.mktemp("zero_copy")), object_store_memory=128 * MB
    ).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


def _objects() -> dict:
    return memory_stats(objects=True)[0]["objects"]


def test_an_array_read_survives_its_ref_and_puts_that_need_its_memory(small_store):
    original = np.arange(40 * MB // 8, dtype=np.int64)
    ref = ray.put(original)
    oid = ref.hex()
    array = ray.get(ref)
    assert not array.flags.writeable
    with pytest.raises(ValueError):
        array[0] = 1
    assert np.array_equal(array, original)
    del ref
    gc.collect()
    others = [ray.put(np.full(40 * MB // 8, i, dtype=np.int64)) for i in range(4)]  # 160 MB through 128 MB
    assert np.array_equal(array, original)  # its slot was not reused
    assert _objects()[oid]["state"] == "PINNED"
    del array
    gc.collect()
    wait_until(lambda: oid not in _objects(), 15, "the slot of the dropped object released")
    assert [int(ray.get(r)[0]) for r in others] == [0, 1, 2, 3]


def test_a_view_derived_from_the_array_keeps_the_slot_pinned(small_store):
    ref = ray.put(np.ones(4 * MB // 8))
    oid = ref.hex()
    part = ray.get(ref)[10:20]
    gc.collect()
    assert _objects()[oid]["pins"] == 1
    del part
    gc.collect()
    wait_until(lambda: _objects()[oid]["pins"] == 0, 15, "the pin released with the last view")
    assert _objects()[oid]["state"] == "IN_MEMORY"


def test_two_gets_share_the_slot_and_the_pin_the_put_kept(small_store):
    ref = ray.put(np.ones(4 * MB // 8))  # within the held pins' budget (1/8 of the arena)
    first, second = ray.get(ref), ray.get(ref)
    assert np.shares_memory(first, second)
    assert _objects()[ref.hex()]["pins"] == 1
    del first
    gc.collect()
    time.sleep(IDLE_SECONDS + 0.5)  # idle: the pin is no longer held for reads, but `second` maps it
    assert _objects()[ref.hex()]["pins"] == 1
    del second
    gc.collect()
    wait_until(lambda: _objects()[ref.hex()]["pins"] == 0, 15, "no pin left")

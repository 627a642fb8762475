"""Spilling: a full store spills unpinned objects to disk and restores them on get."""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest

import babyray as ray
from babyray.exceptions import ObjectStoreFullError
from tests.conftest import assert_session_clean

MB = 1024 * 1024


@pytest.fixture
def small_store(tmp_path):
    """A private cluster with a 100 MB object store."""
    info = ray.init(num_cpus=2, temp_dir=str(tmp_path), object_store_memory=100 * MB).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])
    assert not os.listdir(os.path.join(info["session_dir"], "spill")), "spill files left behind"


def test_putting_four_times_the_store_succeeds_and_every_object_reads_back_intact(small_store):
    refs = [ray.put(np.full(10 * MB // 8, i, dtype=np.int64)) for i in range(40)]  # 400 MB
    stats = ray.memory_stats()[0]
    assert stats["num_spilled"] >= 30 and stats["spilled_bytes"] >= 300 * MB
    assert stats["used_bytes"] <= 100 * MB
    for i, ref in enumerate(refs):
        value = ray.get(ref)
        assert (
            value.shape == (10 * MB // 8,)
            and value[0] == i
            and value[-1] == i
            and int(value.sum()) == i * value.size
        )
        del value
    stats = ray.memory_stats()[0]
    assert stats["num_restored"] >= 30 and stats["restored_bytes"] >= 300 * MB
    assert stats["num_objects"] == 40


def test_object_store_full_error_names_the_sizes_when_everything_is_pinned(small_store):
    held = [ray.get(ray.put(np.ones(30 * MB // 8))) for _ in range(3)]  # 90 MB pinned by these values
    with pytest.raises(ObjectStoreFullError, match=r"of \d+ bytes does not fit .* bytes pinned"):
        ray.put(np.ones(30 * MB // 8))
    assert ray.memory_stats()[0]["num_pinned"] == 3
    del held
    ray.get(ray.put(np.ones(30 * MB // 8)))  # the values are gone: room again


def test_a_spilled_object_whose_restore_finds_only_pinned_objects_raises(small_store):
    first = ray.put(np.ones(60 * MB // 8))
    second = ray.put(np.ones(60 * MB // 8))  # spills the first
    value = ray.get(second)  # pinned: the first cannot come back
    with pytest.raises(ObjectStoreFullError, match="restore of spilled object"):
        ray.get(first)
    del value
    assert ray.get(first).sum() == 60 * MB // 8


def test_freeing_a_spilled_object_removes_its_spill_file(small_store):
    refs = [ray.put(np.ones(40 * MB // 8)) for _ in range(4)]
    spill_dir = os.path.join(small_store["session_dir"], "spill")
    files = [f for _, _, fs in os.walk(spill_dir) for f in fs]
    assert files
    del refs
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        ray.memory_stats()[0]["num_objects"] or [f for _, _, fs in os.walk(spill_dir) for f in fs]
    ):
        gc.collect()
        time.sleep(0.05)
    assert not [f for _, _, fs in os.walk(spill_dir) for f in fs]
    assert ray.memory_stats()[0]["used_bytes"] == 0


def test_memory_summary_lists_the_node(small_store):
    ref = ray.put(np.ones(MB))
    summary = ray.memory_summary()
    assert small_store["node_id"] in summary and "spilled" in summary
    del ref

"""``get`` of an object in this node's store pins it on the store's allocation channel, beside
Thespian (a put seals its object on the channel too): answered at once when the object is
sealed and in memory; a spilled object, or one whose seal is still on its way, is pinned
through Thespian instead (restored, or answered at its seal). Either way the pin is counted in the store and released with the value.

Also here: ``init(inline_threshold=N)`` reaches the driver's and the workers' own cores."""

from __future__ import annotations

import gc
import threading
from collections import defaultdict

import numpy as np
import pytest
from conftest import assert_session_clean
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.api.memory import memory_stats
from babyray.store.alloc_channel import AllocClient

MB = 1024 * 1024
INLINE_THRESHOLD = 4096


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    info = ray.init(
        num_cpus=1,
        temp_dir=str(tmp_path_factory.mktemp("pin_channel")),
        object_store_memory=100 * MB,
        inline_threshold=INLINE_THRESHOLD,
    )
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


@pytest.fixture
def answers(small_store, monkeypatch) -> dict[str, list]:
    """What the channel answered this driver's pins, by object id (None: ask through Thespian)."""
    answered: dict[str, list] = defaultdict(list)
    pin = AllocClient.pin

    def recording_pin(self: AllocClient, oids: tuple[str, ...]):
        answer = pin(self, oids)
        for oid in oids:
            answered[oid].append(answer)
        return answer

    monkeypatch.setattr(AllocClient, "pin", recording_pin)
    return answered


def _stats() -> dict:
    return memory_stats(objects=True)[0]


def _pins(oid: str) -> int:
    return _stats()["objects"][oid]["pins"]


def _released(*arrays_holder: list) -> None:
    for holder in arrays_holder:
        holder.clear()
    gc.collect()


@ray.remote
def total(*arrays):
    return sum(int(a.sum()) for a in arrays)


def test_a_get_pins_on_the_channel_and_the_pin_is_released_with_the_value(answers):
    original = np.arange(MB, dtype=np.int64)
    ref = ray.put(original)
    oid = ref.hex()
    held = [ray.get(ref)]  # right after the put, whose seal went first on the same channel
    assert np.array_equal(held[0], original) and not held[0].flags.writeable
    [(_, slots)] = answers[oid]
    assert slots[oid][1] == _stats()["objects"][oid]["size"]  # the channel pinned it
    assert _pins(oid) == 1
    _released(held)
    wait_until(lambda: _pins(oid) == 0 and _stats()["num_pinned"] == 0, 15, "every pin released")


def test_a_task_reads_its_stored_arguments_and_releases_their_pins(small_store):
    refs = [ray.put(np.full(MB // 8, i, dtype=np.int64)) for i in range(3)]
    expected = sum(i * (MB // 8) for i in range(3))
    for _ in range(3):  # the first opens the worker's channel, the next pin on it
        assert ray.get(total.remote(*refs), timeout=60) == expected
        assert ray.get(total.remote(refs[0]), timeout=60) == 0
    wait_until(lambda: _stats()["num_pinned"] == 0, 15, "the worker's pins released")


def test_a_spilled_object_is_pinned_through_thespian_and_restored(answers):
    first = np.arange(40 * MB // 8, dtype=np.int64)
    refs = [ray.put(first)] + [ray.put(np.full(40 * MB // 8, i, dtype=np.int64)) for i in (1, 2)]
    oid = refs[0].hex()
    assert _stats()["objects"][oid]["state"] == "SPILLED"
    held = [ray.get(refs[0])]
    assert np.array_equal(held[0], first)
    assert answers[oid] == [None]  # not pinned on the channel: spilled
    assert _stats()["num_restored"] >= 1 and _pins(oid) == 1
    _released(held)
    wait_until(lambda: _pins(oid) == 0, 15, "the restored object's pin released")
    assert [int(ray.get(r, timeout=60)[0]) for r in refs[1:]] == [1, 2]


def test_a_get_while_the_seal_is_on_its_way_is_answered_at_the_seal(answers, monkeypatch):
    seal, seals = AllocClient.seal, threading.Event()

    def held_seal(self: AllocClient, *args) -> None:
        threading.Thread(target=lambda: (seals.wait(60), seal(self, *args)), daemon=True).start()

    monkeypatch.setattr(AllocClient, "seal", held_seal)
    original = np.arange(MB, dtype=np.int64)
    ref = ray.put(original)
    oid = ref.hex()
    got: list = []
    reader = threading.Thread(target=lambda: got.append(ray.get(ref, timeout=60)))
    reader.start()
    wait_until(lambda: oid in answers, 30, "the channel's answer")
    assert answers[oid] == [None]  # still being written: not pinned there
    assert _stats()["objects"][oid]["state"] == "BEING_WRITTEN"
    seals.set()
    reader.join(60)
    assert np.array_equal(got[0], original)
    assert _pins(oid) == 1
    _released(got)
    wait_until(lambda: _pins(oid) == 0, 15, "the pin released")


@ray.remote
def sized(n: int) -> bytes:
    return b"x" * n


def test_init_inline_threshold_applies_to_the_drivers_and_workers_puts(small_store):
    small, large = ray.put(b"x" * (INLINE_THRESHOLD // 4)), ray.put(b"x" * (10 * 1024))
    returned = sized.remote(10 * 1024)
    assert ray.get(returned, timeout=60) == b"x" * (10 * 1024)
    objects = _stats()["objects"]
    assert large.hex() in objects and returned.hex() in objects
    assert small.hex() not in objects
    assert ray.get(small) == b"x" * (INLINE_THRESHOLD // 4)

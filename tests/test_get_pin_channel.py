"""``get`` of an object in this node's store pins it on the store's allocation channel, beside
Thespian (a put seals its object on the channel too): answered at once when the object is
sealed and in memory; a spilled object, or one whose seal is still on its way, is pinned
through Thespian instead (restored, or answered at its seal). Either way the pin is counted in the store and released with the value.
A pin can even reach the store before the put it reads: a task's return written into a spare
slot tells the store one-way, and its owner is told at once; the pin waits for the put (for a
while: then ObjectLostError).

A put keeps its object pinned for the putting process, and a get keeps the pin it took, while
a ref to the object lives there, for a second after its last use, within a budget (1/8 of
the arena: 12.5 MB here): a later get maps the slot without asking the store. A process that
dies holding such pins leaves none; a put that finds the store full releases its own.

Also here: ``init(inline_threshold=N)`` reaches the driver's and the workers' own cores."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
from conftest import assert_session_clean
from late_put import late_value, returned_late
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.api.held_pins import BUDGET_FRACTION
from babyray.api.memory import memory_stats
from babyray.store.alloc_channel import AllocClient

MB = 1024 * 1024
STORE = 100 * MB
INLINE_THRESHOLD = 4096


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    info = ray.init(
        num_cpus=1,
        temp_dir=str(tmp_path_factory.mktemp("pin_channel")),
        object_store_memory=STORE,
        inline_threshold=INLINE_THRESHOLD,
    ).address_info
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

    def recording_pin(self: AllocClient, oids: tuple[str, ...], reader: str):
        answer = pin(self, oids, reader)
        for oid in oids:
            answered[oid].append(answer)
        return answer

    monkeypatch.setattr(AllocClient, "pin", recording_pin)
    return answered


@pytest.fixture
def held_seals(monkeypatch) -> threading.Event:
    """This driver's seals on the channel wait until the returned event is set."""
    seal, release = AllocClient.seal, threading.Event()

    def held_seal(self: AllocClient, *args) -> None:
        threading.Thread(target=lambda: (release.wait(60), seal(self, *args)), daemon=True).start()

    monkeypatch.setattr(AllocClient, "seal", held_seal)
    return release


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
    original = np.arange(2 * MB, dtype=np.int64)  # 16 MB: past the held pins' budget
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
    # Only the pin each put keeps for the driver's own reads is left.
    ids = [r.hex() for r in refs]
    wait_until(lambda: [_pins(oid) for oid in ids] == [1, 1, 1], 15, "the worker's pins released")
    del refs
    wait_until(lambda: _stats()["num_pinned"] == 0, 15, "the puts' pins released with their refs")


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


def test_a_get_while_the_seal_is_on_its_way_is_answered_at_the_seal(answers, held_seals):
    original = np.arange(2 * MB, dtype=np.int64)  # past the budget: the put keeps no pin
    ref = ray.put(original)
    oid = ref.hex()
    got: list = []
    reader = threading.Thread(target=lambda: got.append(ray.get(ref, timeout=60)))
    reader.start()
    wait_until(lambda: oid in answers, 30, "the channel's answer")
    assert answers[oid] == [None]  # still being written: not pinned there
    assert _stats()["objects"][oid]["state"] == "BEING_WRITTEN"
    held_seals.set()
    reader.join(60)
    assert np.array_equal(got[0], original)
    assert _pins(oid) == 1
    _released(got)
    wait_until(lambda: _pins(oid) == 0, 15, "the pin released")


def test_a_get_that_reaches_the_store_before_the_put_waits_for_it(small_store):
    assert np.array_equal(ray.get(returned_late.remote(1.0), timeout=60), late_value())
    assert ray.get(total.remote(ray.put(np.ones(4, dtype=np.int64))), timeout=60) == 4  # the worker is fine


def test_a_get_of_a_put_that_never_reaches_the_store_fails_as_lost(small_store):
    with pytest.raises(ray.exceptions.ObjectLostError, match="is not in the store of node"):
        ray.get(returned_late.remote(None), timeout=60)


def test_a_put_freed_by_its_owner_before_it_reaches_the_store_is_deleted_when_it_does(small_store):
    ref = returned_late.remote(1.0)
    ray.wait([ref], fetch_local=False, timeout=60)  # the owner knows it is stored; the store does not yet
    oid = ref.hex()
    del ref  # the owner frees it: before the store learned of it
    time.sleep(1.5)  # the take and seal reach the store
    wait_until(lambda: _freed(oid), 15, "the late put deleted")
    assert _stats()["num_pinned"] == 0


@ray.remote
def one_mb(i: int) -> np.ndarray:
    return np.full(MB // 8, i, dtype=np.int64)


def test_puts_and_returns_whose_refs_are_dropped_at_once_leave_nothing_in_the_store(small_store):
    before = _stats()["num_objects"]
    value = np.ones(MB // 8)
    for _ in range(500):
        ray.put(value)  # its ref dropped at once: the free can overtake the put's take
    refs = [one_mb.remote(i) for i in range(500)]
    ray.wait(refs, num_returns=len(refs), fetch_local=False, timeout=120)
    del refs
    # Before the store remembered frees that came first, ~4 % of such objects stayed (spilled).
    wait_until(lambda: _stats()["num_objects"] <= before, 30, "every dropped object freed")


@ray.remote(max_retries=0)
def die_while_pinning(refs: list) -> None:
    threading.Timer(1.0, os._exit, (1,)).start()
    ray.get(refs[0])  # the store holds the pin back until the object's seal


def test_a_reader_that_dies_while_its_pin_waits_for_the_seal_leaves_no_pin(small_store, held_seals):
    ref = ray.put(np.arange(2 * MB, dtype=np.int64))  # past the budget: the put keeps no pin
    oid = ref.hex()
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(die_while_pinning.remote([ref]), timeout=60)
    time.sleep(0.5)  # the store's channel thread reads the dead worker's end of its connection
    held_seals.set()
    wait_until(lambda: _stats()["objects"][oid]["state"] != "BEING_WRITTEN", 15, "the object sealed")
    assert _pins(oid) == 0  # the dead worker's pin, answered at the seal, was not taken
    del ref
    wait_until(lambda: _freed(oid), 15, "the object freed with its ref")


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


def _freed(oid: str) -> bool:
    return oid not in _stats()["objects"]


def test_a_get_after_a_put_maps_the_slot_the_put_keeps_pinned(answers):
    original = np.arange(MB // 8, dtype=np.int64)
    ref = ray.put(original)
    oid = ref.hex()
    assert _pins(oid) == 1  # kept by the put, for this driver
    held = [ray.get(ref), ray.get(ref)]
    assert np.array_equal(held[0], original) and np.array_equal(held[1], original)
    assert answers[oid] == []  # the store was not asked
    assert _pins(oid) == 1
    _released(held)
    time.sleep(0.1)  # the values' release is counted (every 20 ms): the ref keeps the pin
    assert _pins(oid) == 1 and np.array_equal(ray.get(ref), original)
    assert answers[oid] == []
    wait_until(lambda: _pins(oid) == 0, 15, "the pin released once idle")  # held_pins.IDLE_SECONDS
    assert np.array_equal(ray.get(ref), original) and len(answers[oid]) == 1  # pinned again
    del ref
    wait_until(lambda: _freed(oid), 15, "the object freed with its ref")


@ray.remote
def made(n: int) -> np.ndarray:
    return np.full(n, 7, dtype=np.int64)


def test_a_get_keeps_the_pin_it_took_while_the_ref_lives(answers):
    ref = made.remote(MB // 8)  # stored by the worker: not pinned for the driver
    oid = ref.hex()
    first = [ray.get(ref, timeout=60)]
    assert len(answers[oid]) == 1 and answers[oid][0] is not None  # pinned on the channel, once
    _released(first)
    time.sleep(0.1)
    assert int(ray.get(ref).sum()) == 7 * (MB // 8)
    assert len(answers[oid]) == 1 and _pins(oid) == 1  # the second get asked nobody
    del ref
    wait_until(lambda: _freed(oid), 15, "the object freed with its ref")


def test_held_pins_past_the_budget_are_released_oldest_first_but_not_under_a_live_value(answers):
    refs = [ray.put(np.full(MB // 8, 0, dtype=np.int64))]
    alive = ray.get(refs[0])  # a live value of the first: its pin stays when the budget drops it
    in_budget = STORE // BUDGET_FRACTION // MB  # 1 MB arrays (and their headers) held at once
    refs += [ray.put(np.full(MB // 8, i, dtype=np.int64)) for i in range(1, in_budget + 3)]
    ids = [r.hex() for r in refs]
    # (the releases are sent together, within the counting thread's next round)
    wait_until(lambda: sum(_pins(oid) for oid in ids[1:]) == in_budget, 15, "the oldest released")
    assert _pins(ids[1]) == 0 and _pins(ids[-1]) == 1
    assert _pins(ids[0]) == 1
    del alive
    gc.collect()
    wait_until(lambda: _pins(ids[0]) == 0, 15, "the dropped pin released with the value")
    assert int(ray.get(refs[1])[0]) == 1 and answers[ids[1]][-1] is not None  # pinned again
    del refs
    wait_until(
        lambda: _stats()["num_pinned"] == 0 and not any(oid in _stats()["objects"] for oid in ids),
        15,
        "all freed",
    )


@ray.remote(max_restarts=0)
class Keeper:
    def keep(self, refs: list) -> int:
        ray.get(refs[0])  # the first read opens this process's channel (pinned through Thespian)
        self.refs, self.value = refs, ray.get(refs[0])  # pinned on the channel, held
        return int(self.value.sum())

    def die(self) -> None:
        os._exit(0)


def test_a_process_that_dies_holding_pins_and_refs_leaves_neither(small_store):
    ref = ray.put(np.ones(MB // 8, dtype=np.int64))
    oid = ref.hex()
    keeper = Keeper.remote()
    assert ray.get(keeper.keep.remote([ref]), timeout=60) == MB // 8
    wait_until(
        lambda: _pins(oid) == 2, 15, "the first read's pin released"
    )  # the driver's (its put) and the actor's (its get)
    keeper.die.remote()
    wait_until(lambda: _pins(oid) == 1, 30, "the dead actor's pin released")
    del ref  # the dead actor borrowed it too, and never said it let go: its owner asks the GCS
    wait_until(lambda: _freed(oid), 15, "the object freed, its dead borrower dropped")


def test_a_put_that_finds_the_store_full_releases_the_pins_its_process_holds(answers):
    small = np.full(10 * MB // 8, 3, dtype=np.int64)
    kept = ray.put(small)  # held: 10 MB of the 12.5 MB budget
    assert _pins(kept.hex()) == 1
    large = ray.put(np.ones(92 * MB // 8))  # room only if `kept` is spilled: its pin is let go
    assert _stats()["objects"][kept.hex()]["state"] == "SPILLED"
    del large
    assert np.array_equal(ray.get(kept, timeout=60), small)  # restored


@ray.remote(max_retries=0)
def die_reading(array: np.ndarray) -> None:
    os._exit(1)


def test_a_worker_that_dies_reading_its_argument_leaves_it_unpinned(small_store):
    ref = ray.put(np.ones(2 * MB))  # 16 MB: past the budget, not held by the driver
    oid = ref.hex()
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(die_reading.remote(ref), timeout=60)
    wait_until(lambda: _pins(oid) == 0, 15, "the dead worker's pin released")
    del ref
    wait_until(lambda: _freed(oid), 15, "the object freed with its ref")

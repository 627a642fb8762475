"""The object store's table, driven directly (no Thespian, no arena): states and their
transitions, pins, freeing, eviction and spill order, spare slots and second creates."""

from __future__ import annotations

import pytest

from babyray.exceptions import ObjectStoreFullError
from babyray.store.alloc_channel import SpareSlots
from babyray.store.object_table import (
    TRANSITIONS,
    InvalidTransition,
    ObjectState,
    ObjectTable,
    SealOutcome,
)

KB = 1024
S = ObjectState


class FakeSpill:
    """Spill files as a dict; ``fail`` makes spills fail."""

    def __init__(self) -> None:
        self.files: dict[str, int] = {}
        self.restored: list[str] = []
        self.fail = False

    def spill(self, oid: str, offset: int, size: int) -> bool:
        if self.fail:
            return False
        self.files[oid] = size
        return True

    def restore(self, oid: str, offset: int, size: int) -> bool:
        self.restored.append(oid)
        return oid in self.files

    def delete(self, oid: str) -> None:
        self.files.pop(oid, None)


@pytest.fixture
def spill() -> FakeSpill:
    return FakeSpill()


@pytest.fixture
def table(spill: FakeSpill) -> ObjectTable:
    return ObjectTable(64 * KB, spill)  # room for four 16 KB objects


def sealed(table: ObjectTable, oid: str, size: int = 16 * KB, primary: bool = True) -> int:
    offset = table.create(oid, size, "owner", primary=primary)
    assert offset is not None
    assert table.seal(oid, size, "owner") is SealOutcome.SEALED
    return offset


def state(table: ObjectTable, oid: str) -> ObjectState:
    obj = table.get(oid)
    return S.DELETED if obj is None else obj.state


# ---- states and transitions ------------------------------------------------------------


def test_a_created_object_is_creating_until_sealed_and_then_listed_for_the_gcs(table):
    table.create("a", 16 * KB, "owner")
    assert state(table, "a") is S.CREATING and table.held() == ()
    assert table.seal("a", 16 * KB, "owner") is SealOutcome.SEALED
    assert state(table, "a") is S.SEALED and table.held() == (("a", 16 * KB),)


def test_a_second_seal_changes_nothing(table):
    sealed(table, "a")
    assert table.seal("a", 16 * KB, "owner") is SealOutcome.IGNORED
    assert state(table, "a") is S.SEALED


def test_a_seal_of_an_unknown_object_is_ignored(table):
    assert table.seal("nobody", 16 * KB, "owner") is SealOutcome.IGNORED
    assert "nobody" not in table


def test_every_transition_leads_to_a_state_and_only_listed_ones_are_allowed(table):
    assert all(isinstance(new, ObjectState) for new in TRANSITIONS.values())
    sealed(table, "a")
    obj = table.get("a")
    with pytest.raises(InvalidTransition, match="seal is not allowed in state SEALED"):
        table._move("a", obj, "seal")
    with pytest.raises(InvalidTransition):
        table._move("a", obj, "restore")
    assert state(table, "a") is S.SEALED  # a refused move changes nothing


def test_freeing_an_unpinned_sealed_object_deletes_it_and_releases_its_slot(table):
    sealed(table, "a")
    table.free("a")
    assert "a" not in table and table.allocator.used == 0
    assert table.take_gone() == ["a"] and table.take_gone() == []
    assert table.counters.freed_objects == 1


def test_a_pinned_object_freed_is_deleted_at_its_last_unpin(table):
    sealed(table, "a")
    assert table.pin(["a"]).slots
    assert table.pin(["a"]).slots
    table.free("a")
    assert state(table, "a") is S.FREED_PINNED and table.take_gone() == []
    table.unpin("a")
    assert state(table, "a") is S.FREED_PINNED
    table.unpin("a")
    assert "a" not in table and table.allocator.used == 0 and table.take_gone() == ["a"]


def test_an_object_freed_while_written_is_deleted_at_its_seal_unannounced(table):
    table.create("a", 16 * KB, "owner")
    table.free("a")
    assert state(table, "a") is S.FREED_WRITING and table.allocator.used == 16 * KB  # the writer still writes
    assert table.seal("a", 16 * KB, "owner") is SealOutcome.FREED
    assert "a" not in table and table.allocator.used == 0
    assert table.take_gone() == []  # the GCS never heard of it


def test_freeing_twice_counts_once(table):
    sealed(table, "a")
    table.pin(["a"])
    table.free("a")
    table.free("a")
    assert table.counters.freed_objects == 1 and state(table, "a") is S.FREED_PINNED


def test_abort_drops_an_unsealed_object_but_never_a_sealed_one(table):
    table.create("pulled", 16 * KB, "", primary=False)
    table.abort("pulled")
    assert "pulled" not in table and table.allocator.used == 0
    sealed(table, "a")
    table.abort("a")
    assert state(table, "a") is S.SEALED


# ---- pins ------------------------------------------------------------------------------


def test_pin_gives_every_slot_or_says_which_object_is_missing_or_unsealed(table):
    offset = sealed(table, "a")
    table.create("b", 16 * KB, "owner")
    assert table.pin(["a", "zz"]).coming == "zz"  # never here: on its way
    assert table.pin(["a", "b"]).unsealed == "b"
    assert table.get("a").pins == 0  # all or nothing
    assert table.pin(["a"]).slots == {"a": (offset, 16 * KB)}
    assert table.get("a").pins == 1


def test_an_unpin_without_a_pin_never_makes_the_count_negative(table):
    sealed(table, "a")
    table.unpin("a")
    assert table.get("a").pins == 0
    table.pin(["a"])
    assert "a" not in table.eviction_order()  # still pinned: not evictable


def test_a_readers_unpins_release_only_the_pins_it_holds(table):
    sealed(table, "a")
    table.pin(["a"], reader="r1")
    table.pin(["a"], reader="r2")
    table.unpin("a", reader="r3")  # holds none
    table.unpin("a", reader="r1")
    table.unpin("a", reader="r1")  # its only pin is released already
    assert table.objects["a"].pins == 1 and table.reader_pins == {"r2": {"a": 1}}


def test_a_reader_gone_releases_its_pins_and_its_late_unpins_change_nothing(table):
    sealed(table, "a")
    sealed(table, "b")
    table.pin(["a", "a", "b"], reader="dead")
    table.pin(["b"], reader="alive")
    table.free("a")
    table.reader_gone("dead")
    assert "a" not in table.objects  # freed while pinned: deleted at its last unpin
    table.unpin("b", reader="dead")  # its UnpinObjects, sent before it died, comes late
    assert table.objects["b"].pins == 1 and table.reader_pins == {"alive": {"b": 1}}


def test_pinned_objects_are_not_evictable_and_unpinned_ones_are_again(table):
    sealed(table, "a")
    table.pin(["a"])
    assert table.eviction_order() == []
    table.unpin("a")
    assert table.eviction_order() == ["a"]


# ---- eviction and spilling -------------------------------------------------------------


def test_room_is_made_from_secondary_copies_first_then_primaries_least_recently_used(table, spill):
    sealed(table, "p1")
    sealed(table, "s1", primary=False)
    sealed(table, "p2")
    sealed(table, "s2", primary=False)
    table.pin(["p1"])
    table.unpin("p1")  # p1 is now the most recently used
    assert table.eviction_order() == ["s1", "s2", "p2", "p1"]
    assert table.create("new1", 16 * KB, "owner") is not None  # drops s1
    assert "s1" not in table and "s2" in table
    assert table.create("new2", 16 * KB, "owner") is not None  # drops s2
    assert "s2" not in table and spill.files == {}
    assert table.counters.evicted_objects == 2 and table.take_gone() == ["s1", "s2"]
    assert table.create("new3", 16 * KB, "owner") is not None  # spills the LRU primary
    assert state(table, "p2") is S.SPILLED and spill.files == {"p2": 16 * KB}
    assert state(table, "p1") is S.SEALED


def test_a_pin_restores_a_spilled_object_and_a_later_eviction_needs_no_new_write(table, spill):
    for oid in "abcd":
        sealed(table, oid)
    table.create("e", 16 * KB, "owner")  # spills a
    assert state(table, "a") is S.SPILLED and table.get("a").offset is None
    table.seal("e", 16 * KB, "owner")
    pinned = table.pin(["a"])  # restores a, spilling b
    assert pinned.slots and state(table, "a") is S.SEALED and spill.restored == ["a"]
    assert state(table, "b") is S.SPILLED and table.counters.restored_objects == 1
    table.unpin("a")
    spill.fail = True  # a's file is kept: evicting it again writes nothing
    for oid in "cde":
        table.pin([oid])
    assert table.create("f", 16 * KB, "owner") is not None
    assert state(table, "a") is S.SPILLED and table.counters.spilled_objects == 2


def test_a_pin_that_must_not_restore_names_the_spilled_object_and_pins_nothing(table, spill):
    for oid in "abcd":
        sealed(table, oid)
    table.create("e", 16 * KB, "owner")  # spills a
    outcome = table.pin(["b", "a"], restore=False)
    assert outcome.spilled == "a" and not outcome.slots
    assert state(table, "a") is S.SPILLED and spill.restored == []
    assert table.get("b").pins == 0 and table.pin(["b"], restore=False).slots == {
        "b": (table.get("b").offset, 16 * KB)
    }


def test_no_room_when_every_object_is_pinned_or_being_written_and_the_error_names_the_sizes(table):
    sealed(table, "a")
    table.pin(["a"])
    table.create("b", 48 * KB, "owner")
    assert table.create("c", 16 * KB, "owner") is None
    error = table.full_error("c", 16 * KB, "node1")
    assert isinstance(error, ObjectStoreFullError)
    assert "16384 bytes pinned" in str(error) and "49152 bytes being written" in str(error)


def test_a_failed_spill_leaves_the_object_in_the_arena(table, spill):
    for oid in "abcd":
        sealed(table, oid)
    spill.fail = True
    assert table.create("e", 16 * KB, "owner") is None
    assert all(state(table, oid) is S.SEALED for oid in "abcd")


def test_a_spilled_object_that_finds_no_room_to_restore_is_reported(table):
    for oid in "abcd":
        sealed(table, oid)
    table.create("e", 16 * KB, "owner")  # spills a
    for oid in "bcd":
        table.pin([oid])
    assert table.pin(["a"]).no_room == "a"  # e is being written, b c d are pinned


def test_freeing_a_spilled_object_deletes_its_file(table, spill):
    for oid in "abcd":
        sealed(table, oid)
    table.create("e", 16 * KB, "owner")
    assert "a" in spill.files
    table.free("a")
    assert "a" not in table and spill.files == {}


# ---- a second create of the same id (a retried task writing its return again) ----------


def test_a_second_create_over_a_half_written_object_reuses_its_slot(table):
    first = table.create("a", 16 * KB, "attempt-1")  # its writer dies before the seal
    assert table.create("a", 16 * KB, "attempt-2") == first
    assert table.allocator.used == 16 * KB and table.get("a").writer_id == "attempt-2"
    assert table.seal("a", 16 * KB, "attempt-2") is SealOutcome.SEALED


def test_a_second_create_of_another_size_releases_the_half_written_slot(table):
    table.create("a", 16 * KB, "attempt-1")
    table.create("a", 32 * KB, "attempt-2")
    assert table.allocator.used == 32 * KB and table.get("a").size == 32 * KB


def test_a_second_create_of_a_sealed_object_keeps_it_and_frees_the_duplicate_at_its_seal(table):
    offset = sealed(table, "a")
    table.pin(["a"])  # a reader holds the first copy
    scratch = table.create("a", 16 * KB, "attempt-2")
    assert scratch is not None and scratch != offset and table.allocator.used == 32 * KB
    assert table.seal("a", 16 * KB, "attempt-2") is SealOutcome.DUPLICATE
    assert table.allocator.used == 16 * KB
    obj = table.get("a")
    assert (obj.state, obj.offset, obj.pins) == (S.SEALED, offset, 1)
    table.unpin("a")
    table.free("a")
    assert table.allocator.used == 0  # nothing leaked


def test_a_second_create_of_a_spilled_object_keeps_the_spilled_copy(table):
    for oid in "abcd":
        sealed(table, oid)
    sealed(table, "e")  # spills a
    assert state(table, "a") is S.SPILLED
    table.create("a", 16 * KB, "attempt-2")
    assert table.seal("a", 16 * KB, "attempt-2") is SealOutcome.DUPLICATE
    assert state(table, "a") is S.SPILLED
    assert table.allocator.used == 3 * 16 * KB  # b was spilled for the scratch copy, which is gone
    assert sorted(o for o in "abcde" if state(table, o) is S.SPILLED) == ["a", "b"]


# ---- spare slots (puts of a client of the allocation channel) ---------------------------


def spare(table: ObjectTable, size: int = 16 * KB) -> int:
    offset = table.spares.reserve(1, size)
    assert offset is not None
    return offset


@pytest.fixture
def roomy(spill: FakeSpill) -> ObjectTable:
    return ObjectTable(64 * 16 * KB, spill)  # spares of 16 KB allowed


def test_a_put_into_a_spare_is_filed_by_its_take_and_sealed_there(roomy):
    offset = spare(roomy)
    assert roomy.take_spare("a", 16 * KB, "owner", offset)
    assert state(roomy, "a") is S.CREATING and roomy.spares.bytes == 0
    assert roomy.seal("a", 16 * KB, "owner", reserved_offset=offset) is SealOutcome.SEALED
    assert roomy.get("a").offset == offset


def test_a_seal_into_a_spare_that_arrives_before_the_take_files_it_too(roomy):
    offset = spare(roomy)
    assert roomy.seal("a", 16 * KB, "owner", reserved_offset=offset) is SealOutcome.SEALED
    assert not roomy.take_spare("a", 16 * KB, "owner", offset)  # the late take changes nothing
    assert state(roomy, "a") is S.SEALED


def test_a_taken_spare_outlives_its_clients_departure(roomy):
    """The writer is killed after sending its seal: its connection closes first, then the seal
    arrives. The take came before the close on the channel, so the object is kept."""
    offset = spare(roomy)
    roomy.take_spare("a", 16 * KB, "owner", offset)
    roomy.spares.release(1, None)  # the client left
    assert roomy.seal("a", 16 * KB, "owner", reserved_offset=offset) is SealOutcome.SEALED
    assert roomy.pin(["a"]).slots == {"a": (offset, 16 * KB)}


def test_a_spare_never_taken_is_freed_when_its_client_leaves(roomy):
    offset = spare(roomy)
    roomy.spares.release(1, None)
    assert roomy.allocator.used == 0
    assert roomy.seal("a", 16 * KB, "owner", reserved_offset=offset) is SealOutcome.IGNORED


def test_a_spare_put_over_a_sealed_object_is_a_duplicate(roomy):
    first = sealed(roomy, "a")
    offset = spare(roomy)
    roomy.take_spare("a", 16 * KB, "attempt-2", offset)
    assert roomy.seal("a", 16 * KB, "attempt-2", reserved_offset=offset) is SealOutcome.DUPLICATE
    assert roomy.get("a").offset == first and roomy.allocator.used == 16 * KB


def test_a_spare_put_over_a_half_written_object_replaces_it(roomy):
    roomy.create("a", 16 * KB, "attempt-1")
    offset = spare(roomy)
    assert roomy.seal("a", 16 * KB, "attempt-2", reserved_offset=offset) is SealOutcome.SEALED
    assert roomy.get("a").offset == offset and roomy.allocator.used == 16 * KB


def test_the_table_owns_the_spare_slots_of_its_allocator(table):
    assert isinstance(table.spares, SpareSlots) and table.spares.allocator is table.allocator


# ---- reporting -------------------------------------------------------------------------


def test_the_memory_report_names_each_state(table):
    for oid in "abcd":
        sealed(table, oid)
    table.create("e", 16 * KB, "owner")  # spills a
    table.pin(["b"])
    states = {oid: line["state"] for oid, line in table.object_states().items()}
    assert states == {"a": "SPILLED", "b": "PINNED", "c": "IN_MEMORY", "d": "IN_MEMORY", "e": "BEING_WRITTEN"}
    stats = table.stats()
    assert (stats["num_objects"], stats["num_spilled_now"], stats["num_pinned"]) == (5, 1, 1)


def test_the_table_remembers_which_absent_objects_it_deleted_the_latest_first(table, monkeypatch):
    monkeypatch.setattr("babyray.store.object_table.REMEMBERED", 2)
    for oid in ("a", "b", "c"):
        sealed(table, oid)
        table.free(oid)
    table.create("d", 16 * KB, "owner")
    table.abort("d")  # deleted before it was sealed: deleted all the same
    assert table.pin(("e",)).coming == "e" and not table.was_deleted("e")  # never here: on its way
    assert [oid for oid in "abcd" if table.was_deleted(oid)] == ["c", "d"]  # only the latest two
    assert table.pin(("d",)).missing == "d" and table.pin(("a",)).coming == "a"


def test_an_object_freed_before_it_came_is_deleted_at_its_seal(table):
    table.free("late")  # the owner's free overtook the writer's take
    spare = table.spares.reserve(1, KB)  # (spares are small: at most 1/64 of the arena)
    assert spare is not None and table.take_spare("late", KB, "owner", spare)
    assert state(table, "late") is S.FREED_WRITING
    assert table.seal("late", KB, "owner") is SealOutcome.FREED
    assert state(table, "late") is S.DELETED and table.was_deleted("late")
    table.create("late", 16 * KB, "owner")  # written again (a retry): nothing freed it this time
    assert state(table, "late") is S.CREATING


# ---- owners that died (OwnersDied) -----------------------------------------------------


def test_a_dead_owners_objects_go_in_every_state_and_others_stay(table, spill):
    table.create("sealed", 16 * KB, "worker-1", owner_id="dead")
    table.seal("sealed", 16 * KB, "worker-1")
    table.create("pinned", 16 * KB, "worker-1", owner_id="dead")
    table.seal("pinned", 16 * KB, "worker-1")
    table.pin(["pinned"])
    table.create("writing", 16 * KB, "worker-2", owner_id="dead")
    table.create("other", 16 * KB, "worker-1", owner_id="alive")
    table.seal("other", 16 * KB, "worker-1")
    assert sorted(table.owners_died(["dead"])) == ["pinned", "sealed", "writing"]
    assert "sealed" not in table
    assert table.get("pinned").state is S.FREED_PINNED  # deleted at its last unpin
    assert table.get("writing").state is S.FREED_WRITING  # deleted at its seal
    assert table.seal("writing", 16 * KB, "worker-2") is SealOutcome.FREED
    table.unpin("pinned")
    assert "pinned" not in table and table.get("other").state is S.SEALED
    assert table.allocator.used == 16 * KB


def test_an_object_of_an_owner_already_dead_goes_at_its_seal(table):
    table.owners_died(["dead"])
    table.create("late", 16 * KB, "worker-1", owner_id="dead")  # a task finished after its owner died
    assert table.seal("late", 16 * KB, "worker-1") is SealOutcome.FREED
    first = table.create("retried", 16 * KB, "attempt-1", owner_id="alive")
    assert table.create("retried", 16 * KB, "attempt-2", owner_id="dead") == first  # taken over
    assert table.seal("retried", 16 * KB, "attempt-2") is SealOutcome.FREED
    assert table.allocator.used == 0

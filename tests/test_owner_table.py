"""The owner's table of the objects it owns and borrows, driven directly: no cluster, no messages.

Its methods run under the owner's lock, so each test holds it (as the message loop does);
``collect`` releases it while it waits.
"""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from babyray import exceptions, serialization
from babyray.api.object_ref import ObjectRef
from babyray.api.owner_table import OwnerTable
from babyray.protocol import values as vm

ME = "driver-me"


@pytest.fixture
def asked() -> list[ObjectRef]:
    return []


@pytest.fixture
def table(asked: list[ObjectRef]) -> Iterator[OwnerTable]:
    table = OwnerTable(ME, threading.RLock(), asked.append)
    with table.lock:
        yield table


def inline(value: object) -> vm.InlineValue:
    return vm.InlineValue(serialization.dumps(value))


def lost_error(value: vm.ErrorValue) -> BaseException:
    return serialization.deserialize(value.blob)


def test_callbacks_of_a_pending_object_run_once_when_its_value_is_set(table: OwnerTable) -> None:
    table.own_pending("t1-0", "t1")
    seen: list = []
    table.lookup(ObjectRef("t1-0", None, ME), seen.append)
    assert seen == []
    table.set_value("t1-0", inline(1))
    table.set_value("t1-0", inline(2))  # a second value is ignored
    assert seen == [inline(1)]
    assert table.value_of("t1-0") == inline(1)


def test_lookup_of_a_known_value_calls_back_at_once(table: OwnerTable) -> None:
    table.own_value("put-1", None, inline("x"))
    seen: list = []
    table.lookup(ObjectRef("put-1", None, ME), seen.append)
    assert seen == [inline("x")]


def test_an_object_owned_here_but_forgotten_is_lost(table: OwnerTable, asked: list) -> None:
    table.own_value("put-1", None, inline("x"))
    table.drop("put-1")
    seen: list = []
    table.lookup(ObjectRef("put-1", None, ME), seen.append)
    assert isinstance(lost_error(seen[0]), exceptions.ObjectLostError)
    assert asked == []


def test_a_borrowed_value_is_asked_of_its_owner_once_and_kept(table: OwnerTable, asked: list) -> None:
    ref = ObjectRef("theirs-0", "owner-address", "worker-other")
    first: list = []
    second: list = []
    table.lookup(ref, first.append)
    table.lookup(ref, second.append)
    assert asked == [ref]
    table.borrowed_arrived((("theirs-0", inline(7)),))
    assert first == second == [inline(7)]
    third: list = []
    table.lookup(ref, third.append)
    assert third == [inline(7)] and asked == [ref]
    table.forget_borrowed("theirs-0")
    assert table.value_of("theirs-0") is None


def test_a_rerun_makes_values_pending_again_and_brings_back_freed_entries(table: OwnerTable) -> None:
    table.own_value("t1-0", "t1", inline(1))
    table.make_pending("t1-0", "t1")
    table.make_pending("t1-1", "t1")  # freed meanwhile: owned again
    assert table.value_of("t1-0") is None
    entry = table.owned("t1-1")
    assert entry is not None and entry.task_id == "t1" and entry.value is None


def test_answer_gives_a_borrower_the_value_now_or_later_and_an_error_if_unknown(table: OwnerTable) -> None:
    replies: list = []
    table.answer("nobody-0", replies.append)
    assert isinstance(lost_error(replies.pop()), exceptions.ObjectLostError)
    table.own_pending("t1-0", "t1")
    table.answer("t1-0", replies.append)
    assert replies == []
    table.set_value("t1-0", inline(3))
    assert replies == [inline(3)]


def test_known_values_lists_owned_values_and_borrowed_ones(table: OwnerTable) -> None:
    table.own_pending("t1-0", "t1")
    table.own_value("put-1", None, inline(1))
    table.borrowed_arrived((("theirs-0", inline(2)),))
    assert sorted(table.known_values(), key=lambda kv: kv[0]) == [
        ("put-1", inline(1)),
        ("theirs-0", inline(2)),
    ]
    assert sorted(table.owned_ids()) == ["put-1", "t1-0"]


def test_collect_returns_what_is_known_when_enough_is(table: OwnerTable) -> None:
    table.own_value("a-0", "a", inline(1))
    table.own_pending("b-0", "b")
    refs = [ObjectRef("a-0", None, ME), ObjectRef("b-0", None, ME)]
    assert table.collect(refs, 1, None) == {"a-0": inline(1)}


def test_collect_wakes_when_another_thread_sets_the_value(table: OwnerTable) -> None:
    table.own_pending("b-0", "b")
    blocks: list[str] = []
    table.on_block, table.on_unblock = lambda: blocks.append("block"), lambda: blocks.append("unblock")

    def finish() -> None:
        with table.lock:
            table.set_value("b-0", inline(2))

    setter = threading.Timer(0.05, finish)
    setter.start()
    try:
        found = table.collect([ObjectRef("b-0", None, ME)], 1, None)
    finally:
        setter.join()
    assert found == {"b-0": inline(2)}
    assert blocks == ["block", "unblock"]


def test_collect_gives_up_at_its_timeout_with_what_it_has(table: OwnerTable) -> None:
    table.own_pending("b-0", "b")
    assert table.collect([ObjectRef("b-0", None, ME)], 1, 0.01) == {}

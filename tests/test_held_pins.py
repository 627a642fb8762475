"""Held pins: which pins a process keeps (``HeldPins``), and how the allocation channel holds
them for a connection: released by ``unpin`` on it, never more than the client holds, and all
of them when the connection closes."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from babyray.api.held_pins import HeldPins, Slot
from babyray.store.alloc_channel import AllocClient, AllocServer

MB = 1024 * 1024


def _slot(size: int = MB) -> Slot:
    return Slot("arena", 0, size)


def test_pins_past_the_budget_are_released_least_recently_used_first():
    held = HeldPins(3 * MB)
    assert [held.hold(oid, _slot(), 0, {}) for oid in ("a", "b", "c")] == [[], [], []]
    assert held.lookup("a", 0) is not None  # now the most recently used
    assert held.hold("d", _slot(), 0, {}) == ["b"]
    assert held.hold("e", _slot(2 * MB), 0, {}) == ["c", "a"]
    assert held.lookup("b", 0) is None and held.lookup("e", 0) is not None
    assert not held.fits(3 * MB + 1)


def test_pins_not_used_for_a_while_are_released():
    held = HeldPins(8 * MB)
    for t, oid in enumerate("abc"):
        held.hold(oid, _slot(), t, {})
    held.lookup("a", 3)
    assert held.release_idle(1.9, {}) == []
    assert held.release_idle(3.5, {"c": 1}) == ["b"]  # "c" is kept for its live value
    assert held.lookup("c", 3.5) is None and held.views_gone("c") == ["c"]
    assert held.release_idle(10, {}) == ["a"] and len(held) == 0


def test_a_pin_under_a_live_value_is_released_with_the_value_not_before():
    held = HeldPins(MB)
    held.hold("a", _slot(), 0, {})
    assert held.hold("b", _slot(), 0, {"a": 1}) == []  # "a" leaves the budget: its value still lives
    assert held.lookup("a", 0) is None and len(held) == 2
    assert held.views_gone("a") == ["a"] and len(held) == 1
    assert held.ref_gone("b", {"b": 2}) == [] and held.views_gone("b") == ["b"]
    assert held.views_gone("b") == [] and len(held) == 0


def test_a_second_pin_of_a_held_object_is_released_at_once():
    held = HeldPins(4 * MB)
    held.hold("a", _slot(), 0, {})
    assert held.hold("a", _slot(), 0, {}) == ["a"]  # two threads pinned it at once
    assert held.ref_gone("a", {"a": 1}) == []  # kept for its value
    assert held.hold("a", _slot(), 0, {"a": 1}) == ["a"]  # a new ref: the kept pin is held again
    assert held.ref_gone("a", {}) == ["a"] and held.ref_gone("a", {}) == [] and len(held) == 0


def test_a_full_store_takes_every_pin_no_live_value_needs():
    held = HeldPins(8 * MB)
    for oid in "abc":
        held.hold(oid, _slot(), 0, {})
    assert held.release_unused({"b": 1}) == ["a", "c"]
    assert held.lookup("b", 0) is not None and held.hold("d", _slot(7 * MB), 0, {}) == []


class _Pins:
    """What the store does behind the channel with each reader's pins: every object is sealed."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}  # (reader, object id) -> pins
        self.gone: list[str] = []
        self.lock = threading.Lock()

    def pin(self, oids: tuple[str, ...], reader: str):
        with self.lock:
            for oid in oids:
                self.counts[reader, oid] = self.counts.get((reader, oid), 0) + 1
        return "arena", {oid: (0, 8) for oid in oids}

    def seal(self, oid: str, size: int, owner: str, offset: int, keep_pinned: bool) -> None:
        if keep_pinned:
            self.pin((oid,), owner)

    def unpin(self, oids: tuple[str, ...], reader: str) -> None:
        with self.lock:
            for oid in oids:
                self.counts[reader, oid] -= 1

    def reader_gone(self, reader: str) -> None:
        with self.lock:
            self.gone.append(reader)


@pytest.fixture
def pins():
    pins = _Pins()
    arena = f"test-{uuid.uuid4().hex}"
    server = AllocServer(
        arena,
        None,
        None,
        lambda client, offsets: None,
        None,
        pins.pin,
        pins.seal,
        pins.unpin,
        pins.reader_gone,
    )
    yield pins, arena
    server.close()


def _settled(check) -> bool:
    deadline = time.monotonic() + 5
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def test_the_channel_names_the_reader_of_each_pin_kept_seal_and_unpin(pins):
    store, arena = pins
    client = AllocClient(arena, "me")
    client.seal("a", 8, "me", -1, hold=True)
    client.seal("c", 8, "me", -1)  # sealed without a pin
    client.pin(("b", "b"), "me")
    client.unpin(("a", "b"), "me")
    assert _settled(lambda: store.counts == {("me", "a"): 0, ("me", "b"): 1})
    client.close()


def test_a_closed_connection_tells_the_store_its_reader_is_gone(pins):
    store, arena = pins
    quiet = AllocClient(arena, "reader-1")  # named as it connects, before any request
    busy = AllocClient(arena, "reader-2")
    busy.pin(("b",), "reader-2")
    quiet.close()  # as when the process dies
    busy.close()
    assert _settled(lambda: sorted(store.gone) == ["reader-1", "reader-2"])

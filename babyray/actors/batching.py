"""Per-destination coalescing of outgoing control messages (like distributed's BatchedSend).

Messages posted during one actor turn (or while a driver's sender is busy) are grouped by
destination and sent as one ``Batch``, keeping few messages in flight per destination
(see docs/design.md, "Thespian: unacknowledged sends stall every target").
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

from babyray.protocol import values as vm


def address_key(address: Any) -> Any:
    """A hashable key for a Thespian ActorAddress (which is itself unhashable).

    An address of a child still starting (ActorLocalAddress) has no hashable form yet: it
    is keyed by identity.
    """
    details = getattr(address, "addressDetails", address)
    try:
        hash(details)
    except TypeError:
        return id(address)
    return details


class Outbox:
    """Thread-safe buffer of (destination, message) pairs, drained as batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Any, tuple[Any, list]] = {}

    def add(self, dest: Any, msg: Any) -> bool:
        """Queue ``msg``; True if the outbox was empty before (the drainer needs a wake-up)."""
        key = address_key(dest)
        with self._lock:
            was_empty = not self._pending
            entry = self._pending.get(key)
            if entry is None:
                self._pending[key] = (dest, [msg])
            else:
                entry[1].append(msg)
            return was_empty

    def drain(self) -> list[tuple[Any, Any]]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return [
            (dest, msgs[0] if len(msgs) == 1 else vm.Batch(tuple(msgs))) for dest, msgs in pending.values()
        ]

    def __bool__(self) -> bool:
        return bool(self._pending)


def unbatch(msg: Any) -> Iterable[Any]:
    """The messages inside ``msg`` (itself, unless it is a Batch)."""
    if isinstance(msg, vm.Batch):
        for inner in msg.messages:
            yield from unbatch(inner)
    else:
        yield msg

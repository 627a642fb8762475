"""Messages about a stored record, held back until the record's latest write is in the store.

The GCS uses it for the actor table, as Ray's GCS does: a caller learns of an actor's
registration or state change only once that change is durable, so a GCS restarted from the
store knows every actor (and where it was alive) that callers know of. Messages about one
record leave in the order they were posted. While the store is unhealthy nothing is held
back (the cluster serves from memory until the store is back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babyray.gcs.store import TableName
    from babyray.gcs.writer import StoreWriter

Outgoing = list[tuple[Any, Any]]  # (destination, message)


class DurableGate:
    """Holds (destination, message) pairs per key of one table until the key is durable."""

    def __init__(self, writer: "StoreWriter | None", table: "TableName") -> None:
        self.table = table
        self._writer = writer
        self._held: dict[str, Outgoing] = {}

    def post(self, key: str, outgoing: Outgoing) -> Outgoing:
        """Return the pairs that may be sent now; hold the others until ``release``."""
        writer = self._writer
        if not outgoing or writer is None:
            return outgoing
        if key not in self._held and (not writer.is_healthy() or writer.durable_among(self.table, [key])):
            return outgoing
        self._held.setdefault(key, []).extend(outgoing)
        return []

    def release(self) -> Outgoing:
        """The held pairs whose key is durable now (all of them while the store is unhealthy)."""
        if not self._held or self._writer is None:
            return []
        keys = list(self._held)
        if self._writer.is_healthy():
            keys = self._writer.durable_among(self.table, keys)
        return [pair for key in keys for pair in self._held.pop(key)]

    def __len__(self) -> int:
        return len(self._held)

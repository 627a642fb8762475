"""The GCS's function registry: pickled remote functions by id, and who waits for one.

A worker may ask for a function before the driver's registration arrives, or while its
evicted entry cannot be read back from the store: it waits, and gets the function once it
is registered or readable. Answers are returned as (destination, message) pairs to send.
"""

from __future__ import annotations

from typing import Any

from babyray.gcs.durable_gate import Outgoing
from babyray.gcs.tables import Table
from babyray.ids import FunctionID
from babyray.protocol import gcs as gm

__all__ = ["FunctionRegistry"]


class FunctionRegistry:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._waiters: dict[str, list[tuple[Any, str]]] = {}  # function id -> (waiter, req_id)

    def register(self, function_id: FunctionID, name: str, blob: bytes) -> tuple[bool, Outgoing]:
        """Store the function (once); returns whether it is new, and the answers to its waiters."""
        new = self.table.get(function_id) is None
        if new:
            self.table.put(function_id, {"name": name, "blob": blob})
        return new, [
            (waiter, gm.FunctionBlob(req_id, function_id, blob))
            for waiter, req_id in self._waiters.pop(function_id, [])
        ]

    def get(self, function_id: FunctionID, waiter: Any, req_id: str) -> bytes | None:
        """The function's blob (faulted back if evicted), or None and ``waiter`` waits for it."""
        record = self.table.get(function_id)
        if record is None:
            self._waiters.setdefault(function_id, []).append((waiter, req_id))
            return None
        return record["blob"]

    def answer_waiters(self) -> Outgoing:
        """Answers to the waiters whose function can be read now."""
        if not self._waiters:
            return []
        found = self.table.get_many(list(self._waiters))
        return [
            (waiter, gm.FunctionBlob(req_id, FunctionID(function_id), record["blob"]))
            for function_id, record in found.items()
            for waiter, req_id in self._waiters.pop(function_id, [])
        ]

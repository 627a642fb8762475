"""Messages of the GCS table protocol: reading, writing and flushing the GCS's tables.

Frozen, slotted dataclasses importable by module path (DESIGN trap 4). Requests carry a
``req_id`` the reply repeats and an optional ``reply_to`` (a driver's inbox); the GCS answers
a request it cannot serve with the same reply type and ``error`` set, never by raising.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ActorsDurable",
    "FlushGcs",
    "GcsError",
    "GcsFlushed",
    "GcsStats",
    "GetGcsStats",
    "GetTableEntries",
    "ListTable",
    "TableEntries",
    "UpdateTableEntries",
]


@dataclass(frozen=True, slots=True)
class ActorsDurable:
    """GCS writer thread -> its GCS: actor records reached the store (held replies may go)."""


@dataclass(frozen=True, slots=True)
class GetTableEntries:
    """Anyone -> GCS: the records of ``keys`` in ``table`` (evicted ones are read back)."""

    req_id: str
    table: str
    keys: tuple
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ListTable:
    """Anyone -> GCS: the records of ``table`` whose fields equal ``where``'s values.

    ``where`` may name only the indexed fields ``state`` and ``name``. The store and memory
    are both read; at most ``limit`` records come back, oldest update first.
    """

    req_id: str
    table: str
    where: dict | None = None
    limit: int | None = None
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class TableEntries:
    """GCS -> requester: ((key, record or None), ...) of one table, or an error text."""

    req_id: str
    table: str
    entries: tuple
    error: str | None = None

    def __repr__(self) -> str:
        return f"TableEntries(req_id={self.req_id}, table={self.table}, n={len(self.entries)})"


@dataclass(frozen=True, slots=True)
class UpdateTableEntries:
    """Any part -> GCS: merge ((key, fields), ...) into the records of ``table``.

    For tables without a dedicated message yet (actors). No reply.
    """

    table: str
    updates: tuple

    def __repr__(self) -> str:
        return f"UpdateTableEntries(table={self.table}, n={len(self.updates)})"


@dataclass(frozen=True, slots=True)
class GetGcsStats:
    """Anyone -> GCS: reply GcsStats."""

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class GcsStats:
    """GCS -> requester: its process, store and tables, for tests, benchmarks and the CLI."""

    req_id: str
    pid: int
    url: str
    """The store URL, password redacted."""
    store_healthy: bool
    pending_writes: int
    in_memory: dict
    """Table name -> entries held in memory."""
    evicted: dict
    """Table name -> entries evicted so far."""
    faults: dict
    """Table name -> entries read back from the store so far."""
    recovered: bool
    """The tables were loaded from the store (possibly empty) at start or since."""
    flushing: bool


@dataclass(frozen=True, slots=True)
class FlushGcs:
    """Anyone -> GCS: wait up to ``timeout`` s for pending writes, then run a flush pass.

    Blocks the GCS for at most ``timeout``; meant for tests and tools.
    """

    req_id: str
    timeout: float = 5.0
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class GcsFlushed:
    """GCS -> requester: whether every write was durable in time, and entries evicted."""

    req_id: str
    durable: bool
    evicted: int


@dataclass(frozen=True, slots=True)
class GcsError:
    """GCS -> requester: ``request`` (the request's type name) failed with an exception of type
    ``error_type`` saying ``message``. The receiver raises its own error naming both."""

    request: str
    error_type: str
    message: str
    req_id: str | None = None

    def __str__(self) -> str:
        return f"the GCS could not serve {self.request}: {self.error_type}: {self.message}"

"""The GCS's tables: functions, task events, metric values, and reading, writing and flushing any table.

The GCS answers a table request it cannot serve with the same reply type and ``error`` set,
never by raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from babyray.ids import FunctionID
from babyray.protocol import Reply, pickle_through_init, short_repr


@dataclass(frozen=True, slots=True)
class RegisterFunction:
    """Driver or worker -> GCS: store a pickled function or class under its id."""

    function_id: FunctionID
    name: str
    blob: bytes

    def __repr__(self) -> str:
        return short_repr("RegisterFunction", id=self.function_id, name=self.name)


@dataclass(frozen=True, slots=True)
class FunctionBlob(Reply):
    function_id: FunctionID
    blob: bytes | None

    def __repr__(self) -> str:
        return short_repr("FunctionBlob", id=self.function_id)


@dataclass(frozen=True, slots=True)
class GetFunction:
    """Worker -> GCS: reply FunctionBlob (waits until the function is registered)."""

    reply: ClassVar[type[Reply]] = FunctionBlob

    req_id: str
    function_id: FunctionID
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class TaskEvents:
    """Owners and workers -> GCS: task state changes (the lineage table)."""

    events: tuple  # ((task_id, state, fields dict), ...)

    def __repr__(self) -> str:
        return short_repr("TaskEvents", n=len(self.events))


@dataclass(frozen=True, slots=True)
class MetricsReport:
    """Driver or worker -> GCS: values of the process's custom metrics (ray.util.metrics).

    ``reporter`` names the process (its worker id); ``series`` holds
    ``(name, kind, description, tags, value)`` rows, as babyray/api/metric_registry.py
    describes them: the series changed since the process's last report, or all of them.
    """

    reporter: str
    series: tuple

    def __repr__(self) -> str:
        return short_repr("MetricsReport", reporter=self.reporter, n=len(self.series))


@dataclass(frozen=True, slots=True)
class TableEntries(Reply):
    """GCS -> requester: ((key, record or None), ...) of one table, or an error text."""

    table: str
    entries: tuple
    error: str | None = None

    def __repr__(self) -> str:
        return f"TableEntries(req_id={self.req_id}, table={self.table}, n={len(self.entries)})"


@dataclass(frozen=True, slots=True)
class GetTableEntries:
    """Anyone -> GCS: the records of ``keys`` in ``table`` (evicted ones are read back)."""

    reply: ClassVar[type[Reply]] = TableEntries

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

    reply: ClassVar[type[Reply]] = TableEntries

    req_id: str
    table: str
    where: dict | None = None
    limit: int | None = None
    reply_to: Any = None


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
class ActorsDurable:
    """GCS writer thread -> its GCS: actor records reached the store (held replies may go)."""


@dataclass(frozen=True, slots=True)
class GcsStats(Reply):
    """GCS -> requester: its process, store and tables, for tests, benchmarks and the CLI."""

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
class GetGcsStats:
    """Anyone -> GCS: reply GcsStats."""

    reply: ClassVar[type[Reply]] = GcsStats

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class GcsFlushed(Reply):
    """GCS -> requester: whether every write was durable in time, and entries evicted."""

    durable: bool
    evicted: int


@dataclass(frozen=True, slots=True)
class FlushGcs:
    """Anyone -> GCS: wait up to ``timeout`` s for pending writes, then run a flush pass.

    Blocks the GCS for at most ``timeout``; meant for tests and tools.
    """

    reply: ClassVar[type[Reply]] = GcsFlushed

    req_id: str
    timeout: float = 5.0
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class GcsError:
    """GCS -> sender: ``request`` (the request's type name) failed with an exception of type
    ``error_type`` saying ``message``. The answer to a start message (StartGcs) the GCS refuses;
    the receiver raises its own error naming both."""

    request: str
    error_type: str
    message: str


pickle_through_init(globals())

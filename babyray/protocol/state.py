"""State queries that reach past the GCS: worker tables, drivers, references.

``babyray list workers`` asks every local scheduler for its worker table; ``babyray memory``
asks the GCS for the connected drivers and then every driver and worker (each runs a
CoreClient) for a snapshot of the ObjectRefs it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from babyray.ids import NodeID, WorkerID
from babyray.protocol import Reply, pickle_through_init, short_repr


@dataclass(frozen=True, slots=True)
class WorkerTable(Reply):
    """Local scheduler -> requester: one dict per worker process of its node, idle ones too.

    Each has ``worker_id``, ``node_id``, ``pid``, ``state`` (STARTING, IDLE, BUSY, BLOCKED
    in ``get`` with its CPU lent, LEASED to an owner, ACTOR), ``actor_id``, ``running_task_id``,
    ``num_queued``, ``started_at`` and ``address`` (where to ask it for its references).
    """

    node_id: NodeID
    workers: tuple

    def __repr__(self) -> str:
        return short_repr("WorkerTable", node=self.node_id, n=len(self.workers))


@dataclass(frozen=True, slots=True)
class GetWorkers:
    """Anyone -> local scheduler: reply WorkerTable."""

    reply: ClassVar[type[Reply]] = WorkerTable

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class Drivers(Reply):
    """GCS -> requester: the connected drivers, dicts of ``job_id``, ``pid``, ``ip``,
    ``registered_at`` and ``inbox`` (where to ask it for its references)."""

    drivers: tuple

    def __repr__(self) -> str:
        return short_repr("Drivers", n=len(self.drivers))


@dataclass(frozen=True, slots=True)
class ListDrivers:
    """Anyone -> GCS: reply Drivers."""

    reply: ClassVar[type[Reply]] = Drivers

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class References(Reply):
    """Driver or worker -> requester: the ObjectRefs its process holds and why.

    ``references`` holds one dict per object (see ``babyray.api.reference_report``);
    ``worker_id`` is the process's identity as owner and borrower.
    """

    worker_id: WorkerID
    pid: int
    node_id: NodeID
    references: tuple

    def __repr__(self) -> str:
        return short_repr("References", worker=self.worker_id, n=len(self.references))


@dataclass(frozen=True, slots=True)
class GetReferences:
    """Anyone -> a driver's inbox or a worker: reply References."""

    reply: ClassVar[type[Reply]] = References

    req_id: str
    reply_to: Any = None


pickle_through_init(globals())

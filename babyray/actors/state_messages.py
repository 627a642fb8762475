"""Messages of the state queries that reach past the GCS: worker tables, drivers, references.

``babyray list workers`` asks every local scheduler for its worker table; ``babyray memory``
asks the GCS for the connected drivers and then every driver and worker (each runs a
CoreClient) for a snapshot of the ObjectRefs it holds. Same rules as ``messages.py``:
frozen, slotted dataclasses importable by module path (DESIGN trap 4), a ``req_id`` the
reply repeats, ``reply_to`` for a driver's inbox, a cheap ``__repr__`` (trap 7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from babyray.actors.messages import _short

__all__ = ["Drivers", "GetReferences", "GetWorkers", "ListDrivers", "References", "WorkerTable"]


@dataclass(frozen=True, slots=True)
class GetWorkers:
    """Anyone -> local scheduler: reply WorkerTable."""

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class WorkerTable:
    """Local scheduler -> requester: one dict per worker process of its node, idle ones too.

    Each has ``worker_id``, ``node_id``, ``pid``, ``state`` (STARTING, IDLE, BUSY, BLOCKED
    in ``get`` with its CPU lent, ACTOR), ``actor_id``, ``running_task_id``, ``num_queued``,
    ``started_at`` and ``address`` (where to ask it for its references).
    """

    req_id: str
    node_id: str
    workers: tuple

    def __repr__(self) -> str:
        return _short("WorkerTable", node=self.node_id, n=len(self.workers))


@dataclass(frozen=True, slots=True)
class ListDrivers:
    """Anyone -> GCS: reply Drivers."""

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class Drivers:
    """GCS -> requester: the connected drivers, dicts of ``job_id``, ``pid``, ``ip``,
    ``registered_at`` and ``inbox`` (where to ask it for its references)."""

    req_id: str
    drivers: tuple

    def __repr__(self) -> str:
        return _short("Drivers", n=len(self.drivers))


@dataclass(frozen=True, slots=True)
class GetReferences:
    """Anyone -> a driver's inbox or a worker: reply References."""

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class References:
    """Driver or worker -> requester: the ObjectRefs its process holds and why.

    ``references`` holds one dict per object (see ``babyray.api.reference_report``);
    ``worker_id`` is the process's identity as owner and borrower.
    """

    req_id: str
    worker_id: str
    pid: int
    node_id: str
    references: tuple

    def __repr__(self) -> str:
        return _short("References", worker=self.worker_id, n=len(self.references))

"""The client processes of a cluster, found on demand: workers and drivers.

Workers come from the worker table of every alive node's local scheduler (idle ones
included), drivers from the GCS's list of connected drivers. Each is a dict with where to
reach it (``address``), so ``babyray memory`` can ask every one of them for its references
(``reference_snapshots``). All requests of a step go out at once and share one timeout.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from babyray.api import reference_report
from babyray.ids import NodeID
from babyray.protocol import cluster as cm
from babyray.protocol import state as sm

if TYPE_CHECKING:
    from babyray.api.core import CoreClient

__all__ = ["alive_nodes", "drivers", "reference_snapshots", "workers"]


def alive_nodes(core: "CoreClient", timeout: float) -> tuple[cm.NodeInfo, ...]:
    """The GCS's alive nodes.

    Raises:
        RayError: the GCS did not answer within ``timeout`` seconds.
    """
    return tuple(n for n in core.request(core.gcs, lambda r: cm.GetNodes(r), timeout).nodes if n.alive)


def workers(
    core: "CoreClient", nodes: tuple[cm.NodeInfo, ...], timeout: float
) -> tuple[list[dict], list[NodeID]]:
    """Every worker of ``nodes`` (see ``protocol.state.WorkerTable``, plus the node's ``ip``)
    and the ids of the nodes whose scheduler did not answer within ``timeout`` seconds."""
    replies = core.request_many([(n.scheduler, lambda r: sm.GetWorkers(r)) for n in nodes], timeout)
    rows: list[dict] = []
    silent: list[NodeID] = []
    for node, reply in zip(nodes, replies, strict=True):
        if reply is None:
            silent.append(node.node_id)
            continue
        ip = node.address.rpartition(":")[0]
        rows.extend({**w, "ip": ip} for w in reply.workers)
    return rows, silent


def drivers(core: "CoreClient", timeout: float) -> list[dict]:
    """The drivers connected to the GCS: ``job_id``, ``pid``, ``ip``, ``registered_at``, ``inbox``.

    Raises:
        RayError: the GCS did not answer within ``timeout`` seconds.
    """
    return list(core.request(core.gcs, lambda r: sm.ListDrivers(r), timeout).drivers)


def reference_snapshots(core: "CoreClient", timeout: float) -> tuple[list[dict], list[dict]]:
    """Ask every driver and worker for the ObjectRefs it holds.

    Returns (processes that answered, processes that did not). A process is a dict of
    ``type`` (driver or worker), ``worker_id``, ``pid``, ``ip``, ``node_id``, ``job_id`` and
    ``actor_id``; those that answered carry ``references`` (``reference_report.snapshot``).
    This process answers for itself without a message.
    """
    nodes = alive_nodes(core, timeout)
    found, _ = workers(core, nodes, timeout)
    processes = [
        {
            "type": "worker",
            "worker_id": w["worker_id"],
            "pid": w["pid"],
            "ip": w["ip"],
            "node_id": w["node_id"],
            "job_id": None,
            "actor_id": w["actor_id"],
            "address": w["address"],
        }
        for w in found
        if w["address"] is not None
    ]
    processes += [
        {
            "type": "driver",
            "worker_id": None,
            "pid": d["pid"],
            "ip": d["ip"],
            "node_id": None,
            "job_id": d["job_id"],
            "actor_id": None,
            "address": d["inbox"],
        }
        for d in drivers(core, timeout)
    ]
    me = next((p for p in processes if p["worker_id"] == core.identity or p["job_id"] == core.job_id), None)
    others = [p for p in processes if p is not me]
    replies = core.request_many([(p.pop("address"), lambda r: sm.GetReferences(r)) for p in others], timeout)
    answered = [
        {
            **p,
            "worker_id": reply.worker_id,
            "node_id": _node_of(nodes, p["ip"], reply.node_id),
            "references": list(reply.references),
        }
        for p, reply in zip(others, replies, strict=True)
        if reply is not None
    ]
    silent = [p for p, reply in zip(others, replies, strict=True) if reply is None]
    if me is None:  # not listed (yet): still this process's own references
        me = {
            "type": "worker" if core.job_id == "" else "driver",
            "pid": os.getpid(),
            "ip": "",
            "node_id": core.node_id,
            "job_id": core.job_id or None,
            "actor_id": None,
        }
    me.pop("address", None)
    answered.append(
        {
            **me,
            "worker_id": core.identity,
            "node_id": _node_of(nodes, me["ip"], core.node_id),
            "references": list(reference_report.snapshot(core)),
        }
    )
    return answered, silent


def _node_of(nodes: tuple[cm.NodeInfo, ...], ip: str, node_id: NodeID) -> str | None:
    """``node_id`` (the node a process uses) if it is on the process's host ``ip``; None for a
    driver on a host without a node, which uses the head's."""
    node = next((n for n in nodes if n.node_id == node_id), None)
    if node is None or (ip and node.address.rpartition(":")[0] != ip):
        return None
    return node_id

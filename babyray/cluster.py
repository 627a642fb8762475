"""Starting the parts of a cluster in a Thespian actor system.

``start_head`` starts (or joins) a multiprocTCPBase admin and creates the GCS, the global
scheduler and the node's object store and local scheduler in it. Used by ``init()`` for a
private cluster and by ``babyray start --head``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorSystem

from babyray import config
from babyray.actors import messages as m
from babyray.actors.global_scheduler import GlobalScheduler
from babyray.actors.local_scheduler import LocalScheduler
from babyray.actors.object_store import ObjectStore
from babyray.actors.thespian_setup import bind_to_node_ip, capabilities, log_defs
from babyray.gcs.gcs_actor import GcsActor
from babyray.ids import new_node_id

START_TIMEOUT = 30.0


class ClusterStartError(RuntimeError):
    """A part of the cluster did not start."""


@dataclass
class HeadHandle:
    """Addresses of a running head's parts, as the process that started it sees them."""

    system: Any
    session_dir: str
    node_ip: str
    port: int
    node_id: str
    gcs: Any
    global_scheduler: Any
    scheduler: Any
    store: Any
    arena_name: str


def _ask_started(system: Any, address: Any, msg: Any, what: str) -> m.Started:
    reply = system.ask(address, msg, START_TIMEOUT)
    if not isinstance(reply, m.Started):
        raise ClusterStartError(f"{what} did not start (reply: {reply!r}); see {os.environ.get('THESPLOG_FILE')}")
    return reply


def start_head(session_dir: str, node_ip: str, port: int, resources: dict, object_store_memory: int,
               watch_pid: int = 0, settings: dict | None = None) -> HeadHandle:
    """Start an admin on ``node_ip:port`` with the head's parts; return their addresses."""
    settings = dict(settings or {})
    log_dir = os.path.join(session_dir, "logs")
    bind_to_node_ip(node_ip, log_dir)
    node_id = new_node_id()
    system = ActorSystem("multiprocTCPBase", capabilities(node_ip, port, node_id), logDefs=log_defs(log_dir))
    try:
        gcs = system.createActor(GcsActor)
        _ask_started(system, gcs, m.StartGcs(session_dir, watch_pid, settings), "GCS")
        global_scheduler = system.createActor(GlobalScheduler)
        _ask_started(system, global_scheduler, m.StartGlobalScheduler(gcs, session_dir), "global scheduler")
        store = system.createActor(ObjectStore)
        arena_name = _ask_started(system, store, m.StartObjectStore(node_id, session_dir, object_store_memory, gcs),
                                  "object store").detail
        scheduler = system.createActor(LocalScheduler)
        _ask_started(system, scheduler, m.StartNode(node_id, f"{node_ip}:{port}", session_dir, resources, gcs,
                                                    global_scheduler, store, object_store_memory, settings),
                     "local scheduler")
    except BaseException:
        system.shutdown()
        raise
    return HeadHandle(system, session_dir, node_ip, port, node_id, gcs, global_scheduler, scheduler, store,
                      arena_name)


def default_resources(num_cpus: int | None, num_gpus: int | None, resources: dict | None) -> dict:
    """A node's resources: CPUs default to the machine's count, plus custom resources."""
    total = {"CPU": float(num_cpus if num_cpus is not None else (os.cpu_count() or 1))}
    if num_gpus:
        total["GPU"] = float(num_gpus)
    for name, amount in (resources or {}).items():
        if name in ("CPU", "GPU"):
            raise ValueError(f"Use the num_cpus/num_gpus arguments for {name}, not resources=")
        total[name] = float(amount)
    return total


def object_store_size(requested: int | None) -> int:
    return int(config.get("object_store_memory", requested))

"""The cluster's parts: start-up and shutdown (launcher <-> every part), nodes and drivers
joining the GCS, heartbeats and the node table, and the head directory that tells joining
members and drivers where the head's parts are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from babyray.ids import JobID, NodeID, WorkerID
from babyray.protocol import Reply, pickle_through_init


@dataclass(frozen=True, slots=True)
class StartGcs:
    session_dir: str
    config: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StartGlobalScheduler:
    gcs: Any
    session_dir: str
    policy: str = "locality"


@dataclass(frozen=True, slots=True)
class StartObjectStore:
    node_id: NodeID
    session_dir: str
    capacity: int
    gcs: Any


@dataclass(frozen=True, slots=True)
class StartNode:
    """Launcher -> local scheduler: start the node with these resources."""

    node_id: NodeID
    address: str
    session_dir: str
    resources: dict
    gcs: Any
    global_scheduler: Any
    store: Any
    object_store_memory: int
    config: dict = field(default_factory=dict)
    head_address: str = ""  # the head admin's HOST:PORT (Ray's GCS address)


@dataclass(frozen=True, slots=True)
class Started:
    """Any part -> launcher: ready."""

    component: str
    pid: int
    detail: Any = None


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Launcher -> part: release what you hold (arena, files) before the system stops."""


@dataclass(frozen=True, slots=True)
class Stopped:
    """Part -> launcher: the answer to Shutdown; what it held is released."""

    component: str
    pid: int


@dataclass(frozen=True, slots=True)
class RegisterNode:
    """Local scheduler -> GCS: a node joined, with its parts' addresses and resources."""

    node_id: NodeID
    address: str
    scheduler: Any
    store: Any
    resources: dict


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Local scheduler -> GCS: the node is alive; its free resources and queue length, and its
    total resources (placement group bundles add and remove some)."""

    node_id: NodeID
    available: dict
    queue_length: int
    num_workers: int
    resources: dict | None = None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node table entry as the GCS reports it."""

    node_id: NodeID
    address: str
    alive: bool
    resources: dict
    available: dict
    queue_length: int
    scheduler: Any = None
    store: Any = None


@dataclass(frozen=True, slots=True)
class Nodes(Reply):
    nodes: tuple


@dataclass(frozen=True, slots=True)
class GetNodes:
    """Anyone -> GCS: reply Nodes. ``job_id``: a connected driver's watch, which shows the GCS
    the driver is alive (a remote driver killed with kill -9 is dropped when its pings stop)."""

    reply: ClassVar[type[Reply]] = Nodes

    req_id: str
    reply_to: Any = None
    job_id: JobID = JobID("")


@dataclass(frozen=True, slots=True)
class SubscribeNodes:
    """Global scheduler -> GCS: send me NodesChanged whenever the node table changes."""


@dataclass(frozen=True, slots=True)
class NodesChanged:
    """GCS -> global scheduler: the node table changed."""

    nodes: tuple


@dataclass(frozen=True, slots=True)
class GcsRestarted:
    """Restarted GCS -> local schedulers of the nodes it recovered from its store (and they on
    to their workers and object store): the GCS and global scheduler now live at these
    addresses; register again and send everything there."""

    gcs: Any
    global_scheduler: Any


@dataclass(frozen=True, slots=True)
class DriverRegistered(Reply):
    job_id: JobID
    inbox: Any
    nodes: tuple


@dataclass(frozen=True, slots=True)
class RegisterDriver:
    """Driver -> GCS: a driver connected; reply DriverRegistered with its job id (``job_id``
    when a driver registers again with a restarted head: it keeps its job)."""

    reply: ClassVar[type[Reply]] = DriverRegistered

    req_id: str
    pid: int
    job_id: JobID = JobID("")
    worker_id: WorkerID = WorkerID("")  # the driver's, which owns its refs: dead once it is gone


@dataclass(frozen=True, slots=True)
class UnregisterDriver:
    """Driver -> GCS: the driver of ``job_id`` is shutting down (the GCS forgets it)."""

    job_id: JobID


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """Where a running cluster's head parts are; kept by the head's directory actor."""

    head_address: str
    gcs: Any
    global_scheduler: Any
    head_node_id: NodeID
    head_scheduler: Any
    head_store: Any
    scheduling_policy: str = "locality"  # members' local schedulers follow it too


@dataclass(frozen=True, slots=True)
class SetClusterInfo:
    """Head launcher -> head directory: remember the head's parts."""

    info: ClusterInfo


@dataclass(frozen=True, slots=True)
class ClusterInfoReply(Reply):
    info: ClusterInfo


@dataclass(frozen=True, slots=True)
class LookupCluster:
    """Joining member or driver -> directory probe -> head directory: reply ClusterInfoReply."""

    reply: ClassVar[type[Reply]] = ClusterInfoReply

    req_id: str
    reply_to: Any = None


pickle_through_init(globals())

"""Control-plane messages between babyray's Thespian actors and drivers.

Every message is a frozen, slotted dataclass defined here so receivers can import it by
module path (DESIGN trap 4). Requests carry a ``req_id`` that the reply repeats. Messages
that may carry payload have a cheap ``__repr__`` because Thespian formats each message
with ``str()`` when sending (DESIGN trap 7). Many messages to one destination travel as
one ``Batch``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _short(cls_name: str, **fields: Any) -> str:
    return cls_name + "(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"


@dataclass(frozen=True, slots=True)
class Batch:
    """Several messages for one destination, from any sender (see ``actors/batching.py``)."""

    messages: tuple

    def __repr__(self) -> str:
        return _short("Batch", n=len(self.messages))


# ---- values and task specs -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InlineValue:
    """An object's serialized bytes, small enough to travel in messages."""

    blob: bytes

    def __repr__(self) -> str:
        return _short("InlineValue", size=len(self.blob))


@dataclass(frozen=True, slots=True)
class StoredValue:
    """An object that lives in the shared-memory object store of ``node_id``."""

    node_id: str
    size: int
    store: Any = None  # the object store actor's address on that node


@dataclass(frozen=True, slots=True)
class ErrorValue:
    """A failed object: ``blob`` is the serialized exception that ``get`` raises."""

    blob: bytes

    def __repr__(self) -> str:
        return _short("ErrorValue", size=len(self.blob))


@dataclass(frozen=True, slots=True)
class ValueArg:
    """A task argument: an inline value or a store reference, resolved by the owner."""

    object_id: str | None
    value: Any  # InlineValue | StoredValue


@dataclass(slots=True)
class TaskSpec:
    """Everything needed to run one task (or actor creation, or actor method call).

    Built by the owner (the submitting driver or worker), carried owner -> local scheduler
    -> worker. ``args`` holds ValueArg for resolved top-level ObjectRefs and InlineValue for
    plain arguments; ``kwargs`` maps names to the same.
    """

    task_id: str
    job_id: str
    function_id: str
    function_name: str
    args: list
    kwargs: dict
    num_returns: int
    return_ids: list
    resources: dict
    owner: Any  # ActorAddress of the owner's inbox
    owner_id: str
    max_retries: int = 3
    retry_exceptions: Any = False
    attempt: int = 0
    scheduling_strategy: Any = None
    actor_id: str | None = None  # set for actor creation and method calls
    actor_creation: bool = False
    method_name: str | None = None
    # Creation: max_concurrency, name, concurrency_groups. A method call: concurrency_group.
    actor_options: dict = field(default_factory=dict)
    gpu_ids: tuple = ()  # set by the local scheduler: the GPUs of the worker's lease
    generator: str | None = None  # "streaming" or "dynamic": a generator task (see api/generator.py)
    runtime_env: dict = field(default_factory=dict)  # validated, packages as gcs:// URIs; {} for none

    def __repr__(self) -> str:
        return _short("TaskSpec", id=self.task_id, fn=self.function_name, attempt=self.attempt)


# ---- owner <-> local scheduler <-> worker ----------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitTasks:
    """Owner -> local scheduler: tasks whose arguments are resolved, ready to schedule."""

    specs: tuple

    def __repr__(self) -> str:
        return _short("SubmitTasks", n=len(self.specs))


@dataclass(frozen=True, slots=True)
class ExecuteTasks:
    """Local scheduler -> worker: run these tasks in order."""

    specs: tuple

    def __repr__(self) -> str:
        return _short("ExecuteTasks", n=len(self.specs))


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The outcome of one task: a value or ErrorValue per return id."""

    task_id: str
    returns: tuple  # ((object_id, InlineValue | StoredValue | ErrorValue), ...)
    worker_id: str = ""
    node_id: str = ""
    retryable_crash: bool = False
    started_at: float = 0.0  # when the worker started running it (unix seconds; 0 if it did not run)


@dataclass(frozen=True, slots=True)
class GeneratorItem:
    """Worker -> owner: value ``index`` yielded by a generator task, sent as soon as it is stored."""

    task_id: str
    index: int
    object_id: str
    value: Any  # InlineValue | StoredValue (or ErrorValue: the error ending a dynamic generator)

    def __repr__(self) -> str:
        return _short("GeneratorItem", task=self.task_id, index=self.index)


@dataclass(frozen=True, slots=True)
class TaskResults:
    """Worker or scheduler -> owner: finished (or failed, or cancelled) tasks."""

    results: tuple

    def __repr__(self) -> str:
        return _short("TaskResults", n=len(self.results))


@dataclass(frozen=True, slots=True)
class WorkerTasksDone:
    """Worker -> local scheduler: these tasks finished on the worker."""

    worker_id: str
    task_ids: tuple


@dataclass(frozen=True, slots=True)
class WorkerBlocked:
    """Worker -> local scheduler: the running task waits in get; here are its unstarted tasks."""

    worker_id: str
    returned: tuple


@dataclass(frozen=True, slots=True)
class WorkerUnblocked:
    """Worker -> local scheduler: the running task resumed."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class ReturnTasks:
    """Worker -> local scheduler: tasks it was sent but will not run (it is blocked)."""

    worker_id: str
    specs: tuple


@dataclass(frozen=True, slots=True)
class StealTasks:
    """Local scheduler -> busy worker: hand back up to ``count`` unstarted tasks (ReturnTasks)."""

    count: int


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Owner -> local scheduler -> worker (or global scheduler): cancel ``task_id``."""

    task_id: str
    force: bool = False


@dataclass(frozen=True, slots=True)
class WorkerStart:
    """Local scheduler -> new worker: who it is and where the other parts are."""

    worker_id: str
    node_id: str
    session_dir: str
    scheduler: Any
    store: Any
    gcs: Any
    job_id: str = ""
    config: dict = field(default_factory=dict)
    runtime_env: dict = field(default_factory=dict)  # the environment every task of this worker has


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """Worker -> local scheduler: started, with its process id."""

    worker_id: str
    pid: int


# ---- object requests between owners and borrowers -------------------------------------


@dataclass(frozen=True, slots=True)
class GetObjects:
    """Borrower -> owner: reply to ``reply_to`` with ObjectValues as these become ready."""

    req_id: str
    object_ids: tuple
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ObjectValues:
    """Owner -> borrower: the values (or errors) of the requested objects."""

    req_id: str
    values: tuple  # ((object_id, InlineValue | StoredValue | ErrorValue), ...)

    def __repr__(self) -> str:
        return _short("ObjectValues", req=self.req_id, n=len(self.values))


# ---- object store ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateObject:
    """Producer -> object store: reserve ``size`` bytes in the arena for ``object_id``."""

    req_id: str
    object_id: str
    size: int
    owner_id: str = ""
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    """Object store -> producer: write the object at ``offset`` of arena ``arena_name``."""

    req_id: str
    object_id: str
    offset: int
    arena_name: str
    error: Any = None


@dataclass(frozen=True, slots=True)
class SealObject:
    """Producer -> object store: the object's bytes are written and immutable now.

    ``reserved_offset`` names the spare slot the bytes went to (store/alloc_channel.py), or -1
    when the slot was allocated for this object.
    """

    object_id: str
    size: int
    owner_id: str = ""
    reserved_offset: int = -1


@dataclass(frozen=True, slots=True)
class PinObjects:
    """Reader -> object store: reply with the objects' slots, pinned until Unpin."""

    req_id: str
    object_ids: tuple
    reader_id: str = ""
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ObjectsPinned:
    """Object store -> reader: ``slots`` maps object id to (offset, size)."""

    req_id: str
    arena_name: str
    slots: dict
    error: Any = None


@dataclass(frozen=True, slots=True)
class UnpinObjects:
    """Reader -> object store: values read from these slots are gone."""

    object_ids: tuple
    reader_id: str = ""


@dataclass(frozen=True, slots=True)
class FreeObjects:
    """Owner -> object store: no reference to these objects remains."""

    object_ids: tuple


# ---- GCS -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterFunction:
    """Driver or worker -> GCS: store a pickled function or class under its id."""

    function_id: str
    name: str
    blob: bytes

    def __repr__(self) -> str:
        return _short("RegisterFunction", id=self.function_id, name=self.name)


@dataclass(frozen=True, slots=True)
class GetFunction:
    """Worker -> GCS: reply FunctionBlob (waits until the function is registered)."""

    req_id: str
    function_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class FunctionBlob:
    req_id: str
    function_id: str
    blob: bytes | None

    def __repr__(self) -> str:
        return _short("FunctionBlob", id=self.function_id)


@dataclass(frozen=True, slots=True)
class RegisterNode:
    """Local scheduler -> GCS: a node joined, with its parts' addresses and resources."""

    node_id: str
    address: str
    scheduler: Any
    store: Any
    resources: dict


@dataclass(frozen=True, slots=True)
class GcsRestarted:
    """Restarted GCS -> local schedulers of the nodes it recovered from its store (and they on
    to their workers and object store): the GCS and global scheduler now live at these
    addresses; register again and send everything there."""

    gcs: Any
    global_scheduler: Any


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Local scheduler -> GCS: the node is alive; its free resources and queue length, and its
    total resources (placement group bundles add and remove some)."""

    node_id: str
    available: dict
    queue_length: int
    num_workers: int
    resources: dict | None = None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node table entry as the GCS reports it."""

    node_id: str
    address: str
    alive: bool
    resources: dict
    available: dict
    queue_length: int
    scheduler: Any = None
    store: Any = None


@dataclass(frozen=True, slots=True)
class GetNodes:
    """Anyone -> GCS: reply Nodes. ``job_id``: a connected driver's watch, which shows the GCS
    the driver is alive (a remote driver killed with kill -9 is dropped when its pings stop)."""

    req_id: str
    reply_to: Any = None
    job_id: str = ""


@dataclass(frozen=True, slots=True)
class Nodes:
    req_id: str
    nodes: tuple


@dataclass(frozen=True, slots=True)
class NodesChanged:
    """GCS -> global scheduler: the node table changed."""

    nodes: tuple


@dataclass(frozen=True, slots=True)
class RegisterDriver:
    """Driver -> GCS: a driver connected; reply DriverRegistered with its job id (``job_id``
    when a driver registers again with a restarted head: it keeps its job)."""

    req_id: str
    pid: int
    job_id: str = ""


@dataclass(frozen=True, slots=True)
class DriverRegistered:
    req_id: str
    job_id: str
    inbox: Any
    nodes: tuple


@dataclass(frozen=True, slots=True)
class UnregisterDriver:
    """Driver -> GCS: the driver of ``job_id`` is shutting down (the GCS forgets it)."""

    job_id: str


@dataclass(frozen=True, slots=True)
class TaskEvents:
    """Owners and workers -> GCS: task state changes (the lineage table)."""

    events: tuple  # ((task_id, state, fields dict), ...)

    def __repr__(self) -> str:
        return _short("TaskEvents", n=len(self.events))


@dataclass(frozen=True, slots=True)
class TasksLost:
    """GCS -> owner: these tasks of yours were placed or running on ``node_id``, which died.

    The owner resubmits those it still waits for (within ``max_retries``) and ignores the rest.
    """

    node_id: str
    task_ids: tuple
    reason: str = ""

    def __repr__(self) -> str:
        return _short("TasksLost", node=self.node_id, n=len(self.task_ids))


@dataclass(frozen=True, slots=True)
class ObjectLocations:
    """Object stores -> GCS: objects added to (or removed from) a node, with sizes."""

    node_id: str
    added: tuple  # ((object_id, size), ...)
    removed: tuple = ()

    def __repr__(self) -> str:
        return _short("ObjectLocations", node=self.node_id, added=len(self.added), removed=len(self.removed))


@dataclass(frozen=True, slots=True)
class ForwardTasks:
    """Local scheduler -> global scheduler: tasks this node cannot run soon (or ever)."""

    from_node: str
    specs: tuple

    def __repr__(self) -> str:
        return _short("ForwardTasks", n=len(self.specs))


# ---- start-up --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartGcs:
    session_dir: str
    watch_pid: int = 0  # a private cluster dies with this process (the driver)
    config: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StartGlobalScheduler:
    gcs: Any
    session_dir: str
    policy: str = "locality"


@dataclass(frozen=True, slots=True)
class StartNode:
    """Launcher -> local scheduler: start the node with these resources."""

    node_id: str
    address: str
    session_dir: str
    resources: dict
    gcs: Any
    global_scheduler: Any
    store: Any
    object_store_memory: int
    config: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StartObjectStore:
    node_id: str
    session_dir: str
    capacity: int
    gcs: Any


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
class SubscribeNodes:
    """Global scheduler -> GCS: send me NodesChanged whenever the node table changes."""


# ---- multi-host: cluster directory, data plane (issue 6) -------------------------------


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """Where a running cluster's head parts are; kept by the head's directory actor."""

    head_address: str
    gcs: Any
    global_scheduler: Any
    head_node_id: str
    head_scheduler: Any
    head_store: Any
    scheduling_policy: str = "locality"  # members' local schedulers follow it too


@dataclass(frozen=True, slots=True)
class SetClusterInfo:
    """Head launcher -> head directory: remember the head's parts."""

    info: ClusterInfo


@dataclass(frozen=True, slots=True)
class LookupCluster:
    """Joining member or driver -> directory probe -> head directory: reply ClusterInfoReply."""

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ClusterInfoReply:
    req_id: str
    info: ClusterInfo


@dataclass(frozen=True, slots=True)
class PullObject:
    """Reader -> its node's object store: fetch ``object_id`` from ``source_store`` if missing,
    then reply ObjectsPinned as PinObjects does."""

    req_id: str
    object_id: str
    size: int
    source_store: Any
    source_node: str
    reader_id: str = ""
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ServeObject:
    """Pulling object store -> holding object store: pin ``object_id``, reply ObjectServed."""

    req_id: str
    object_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ObjectServed:
    """Holding store -> puller: read [offset, offset+size) from the data plane at host:port."""

    req_id: str
    object_id: str
    offset: int
    size: int
    host: str
    port: int
    error: Any = None


@dataclass(frozen=True, slots=True)
class PullDone:
    """Object store's transfer thread -> the store itself: a pull finished (or failed)."""

    object_id: str
    error: Any = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class GetTransferAddress:
    """A client without the store's arena mapped -> object store: reply TransferAddress."""

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class TransferAddress:
    req_id: str
    host: str
    port: int


# ---- actors ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """What a caller needs to build a handle: class name, methods and options."""

    actor_id: str
    class_name: str
    methods: dict  # method name -> num_returns ("streaming" for a generator method)
    max_task_retries: int = 0
    name: str | None = None
    concurrency_groups: tuple = ()  # names of the actor's concurrency groups


@dataclass(frozen=True, slots=True)
class RegisterActor:
    """Owner -> GCS: create this actor (name checked for uniqueness); reply ActorRegistered."""

    req_id: str
    spec: TaskSpec
    info: ActorInfo
    max_restarts: int = 0
    detached: bool = False
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ActorRegistered:
    req_id: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ActorStarted:
    """Actor's worker -> GCS: the constructor returned; calls go to ``address``."""

    actor_id: str
    address: Any
    node_id: str
    worker_id: str
    pid: int


@dataclass(frozen=True, slots=True)
class ActorInitFailed:
    """Actor's worker -> GCS: the constructor raised (``cause`` is its text)."""

    actor_id: str
    cause: str


@dataclass(frozen=True, slots=True)
class ActorWorkerDied:
    """Local scheduler -> GCS: the process hosting the actor exited (or cannot start). ``final``:
    do not restart it (it called exit_actor, or no worker may host it)."""

    actor_id: str
    node_id: str
    reason: str
    final: bool = False


@dataclass(frozen=True, slots=True)
class ActorExiting:
    """Worker -> local scheduler: the actor it hosts called exit_actor(); stop it for good."""

    worker_id: str
    actor_id: str


@dataclass(frozen=True, slots=True)
class SubscribeActor:
    """Caller -> GCS: send ActorStateChanged now and whenever the actor's state changes."""

    actor_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ActorStateChanged:
    """GCS -> callers: PENDING, ALIVE (with address), RESTARTING or DEAD (with cause)."""

    actor_id: str
    state: str
    address: Any = None
    death_cause: str = ""
    num_restarts: int = 0


@dataclass(frozen=True, slots=True)
class KillActor:
    """Caller -> GCS: kill the actor's process; with no_restart it stays dead."""

    actor_id: str
    no_restart: bool = True


@dataclass(frozen=True, slots=True)
class KillActorWorker:
    """GCS -> local scheduler: kill the worker process hosting ``actor_id``."""

    actor_id: str


@dataclass(frozen=True, slots=True)
class GetNamedActor:
    """Anyone -> GCS: reply NamedActor for ``name`` (info None if there is none)."""

    req_id: str
    name: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class NamedActor:
    req_id: str
    info: ActorInfo | None


@dataclass(frozen=True, slots=True)
class ListNamedActors:
    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class NamedActorList:
    req_id: str
    names: tuple

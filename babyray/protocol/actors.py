"""Actors: owners and callers <-> GCS (registration, state, names), the actor's worker and
its local scheduler <-> GCS (started, failed, died, kill)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from babyray.ids import ActorID, NodeID, WorkerID
from babyray.protocol import Reply, pickle_through_init
from babyray.protocol.values import TaskSpec


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """What a caller needs to build a handle: class name, methods and options."""

    actor_id: ActorID
    class_name: str
    methods: dict  # method name -> num_returns ("streaming" for a generator method)
    max_task_retries: int = 0
    name: str | None = None
    concurrency_groups: tuple = ()  # names of the actor's concurrency groups
    # Options ``@method`` gave methods: name -> {max_task_retries, retry_exceptions (a bool, or
    # the exception classes serialized: the GCS keeping this may not import them),
    # enable_task_events}, only those given; the actor's apply to the others
    method_options: dict = field(default_factory=dict)
    max_pending_calls: int = -1  # calls one process may have queued or running on it (-1: no limit)
    # A call whose arguments are ready may go before earlier calls still waiting for theirs.
    allow_out_of_order_execution: bool = False
    enable_task_events: bool = True  # the actor's option; a method's own is in method_options


@dataclass(frozen=True, slots=True)
class ActorRegistered(Reply):
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RegisterActor:
    """Owner -> GCS: create this actor (its name, if any, checked for uniqueness in ``namespace``);
    reply ActorRegistered."""

    reply: ClassVar[type[Reply]] = ActorRegistered

    req_id: str
    spec: TaskSpec
    info: ActorInfo
    max_restarts: int = 0
    detached: bool = False
    namespace: str = ""  # where the actor's name is registered
    reply_to: Any = None
    owner_node: str = ""  # the node of the worker creating it; "" for a driver (fate sharing)
    owner_pid: int = 0  # the process creating it


@dataclass(frozen=True, slots=True)
class ActorStarted:
    """Actor's worker -> GCS: the constructor returned; calls go to ``address``. ``attempt`` is
    the creation spec's (the restart it is): news of an earlier incarnation is stale."""

    actor_id: ActorID
    address: Any
    node_id: NodeID
    worker_id: WorkerID
    pid: int
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class ActorInitFailed:
    """Actor's worker -> GCS: the constructor raised (``cause`` is its text)."""

    actor_id: ActorID
    cause: str


@dataclass(frozen=True, slots=True)
class ActorWorkerDied:
    """Local scheduler -> GCS: the process hosting the actor exited (or cannot start). ``final``:
    do not restart it (it called exit_actor, or no worker may host it)."""

    actor_id: ActorID
    node_id: NodeID
    reason: str
    final: bool = False


@dataclass(frozen=True, slots=True)
class WorkerDied:
    """Local scheduler -> GCS: a worker process died; the actors it created (it owns) die with it."""

    worker_id: WorkerID
    node_id: NodeID
    reason: str


@dataclass(frozen=True, slots=True)
class ActorExiting:
    """Worker -> local scheduler: the actor it hosts called exit_actor(); stop it for good."""

    worker_id: WorkerID
    actor_id: ActorID


@dataclass(frozen=True, slots=True)
class SubscribeActor:
    """Caller -> GCS: send ActorStateChanged now and whenever the actor's state changes."""

    actor_id: ActorID
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ActorStateChanged:
    """GCS -> callers: PENDING, ALIVE (with address), RESTARTING or DEAD (with cause)."""

    actor_id: ActorID
    state: str
    address: Any = None
    death_cause: str = ""
    num_restarts: int = 0


@dataclass(frozen=True, slots=True)
class KillActor:
    """Caller -> GCS: kill the actor's process; with no_restart it stays dead."""

    actor_id: ActorID
    no_restart: bool = True


@dataclass(frozen=True, slots=True)
class KillActorWorker:
    """GCS -> local scheduler: kill the worker process hosting ``actor_id``."""

    actor_id: ActorID


@dataclass(frozen=True, slots=True)
class NamedActor(Reply):
    info: ActorInfo | None


@dataclass(frozen=True, slots=True)
class GetNamedActor:
    """Anyone -> GCS: reply NamedActor for ``name`` in ``namespace`` (info None if there is none)."""

    reply: ClassVar[type[Reply]] = NamedActor

    req_id: str
    name: str
    namespace: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ActorInfoFound(Reply):
    info: ActorInfo | None


@dataclass(frozen=True, slots=True)
class GetActorInfo:
    """Anyone -> GCS: reply ActorInfoFound with what a handle of ``actor_id`` needs (None: no
    such actor)."""

    reply: ClassVar[type[Reply]] = ActorInfoFound

    req_id: str
    actor_id: ActorID
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class NamedActorList(Reply):
    names: tuple  # (namespace, name) pairs


@dataclass(frozen=True, slots=True)
class ListNamedActors:
    """Anyone -> GCS: the live named actors of ``namespace`` (of every namespace if None)."""

    reply: ClassVar[type[Reply]] = NamedActorList

    req_id: str
    namespace: str | None
    reply_to: Any = None


pickle_through_init(globals())

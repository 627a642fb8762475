"""Values and task specs: what every conversation carries.

An object's value travels inline (``InlineValue``), as a reference to a node's shared-memory
store (``StoredValue``) or as a failure (``ErrorValue``); the ``*Refs`` variants also keep the
ObjectRefs inside the value alive. ``TaskSpec`` is built by the owner and carried owner ->
local scheduler -> worker (and on to the global scheduler and the GCS). ``Batch`` bundles many
messages for one destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from babyray.ids import ActorID, FunctionID, JobID, NodeID, ObjectID, TaskID, WorkerID
from babyray.protocol import pickle_through_init, short_repr


@dataclass(frozen=True, slots=True)
class Batch:
    """Several messages for one destination, from any sender (see ``actors/batching.py``)."""

    messages: tuple

    def __repr__(self) -> str:
        return short_repr("Batch", n=len(self.messages))


@dataclass(frozen=True, slots=True)
class InlineValue:
    """An object's serialized bytes, small enough to travel in messages."""

    blob: bytes

    def __repr__(self) -> str:
        return short_repr("InlineValue", size=len(self.blob))


@dataclass(frozen=True, slots=True)
class StoredValue:
    """An object that lives in the shared-memory object store of ``node_id``."""

    node_id: NodeID
    size: int
    store: Any = None  # the object store actor's address on that node


@dataclass(frozen=True, slots=True)
class ErrorValue:
    """A failed object: ``blob`` is the serialized exception that ``get`` raises."""

    blob: bytes

    def __repr__(self) -> str:
        return short_repr("ErrorValue", size=len(self.blob))


@dataclass(frozen=True, slots=True)
class ValueArg:
    """A task argument: an inline value or a store reference, resolved by the owner."""

    object_id: ObjectID | None
    value: Any  # InlineValue | StoredValue


@dataclass(frozen=True, slots=True)
class InlineValueRefs(InlineValue):
    """An InlineValue whose bytes contain ObjectRefs: ``refs`` keeps them alive.

    The refs travel with the record (unpickling them registers the receiving process as a
    borrower), so the inner objects live at least as long as whoever holds the record: the
    outer object's owner (its ``owned`` entry) or a borrower's cache.
    """

    refs: tuple = ()

    def __repr__(self) -> str:
        return short_repr("InlineValueRefs", size=len(self.blob), refs=len(self.refs))


@dataclass(frozen=True, slots=True)
class StoredValueRefs(StoredValue):
    """A StoredValue whose bytes contain ObjectRefs: ``refs`` keeps them alive (see above)."""

    refs: tuple = ()

    def __repr__(self) -> str:
        return short_repr("StoredValueRefs", node=self.node_id, size=self.size, refs=len(self.refs))


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """Everything needed to run one task (or actor creation, or actor method call).

    Built by the owner (the submitting driver or worker), carried owner -> local scheduler
    -> worker. ``args`` holds ValueArg for resolved top-level ObjectRefs and InlineValue for
    plain arguments; ``kwargs`` maps names to the same. Frozen like every message: a retry or
    a GPU lease makes a new spec (``next_attempt``, ``with_gpu_ids``), whoever keeps the old one.
    """

    task_id: TaskID
    job_id: JobID
    function_id: FunctionID
    function_name: str
    args: list
    kwargs: dict
    num_returns: int
    return_ids: list[ObjectID]
    resources: dict
    owner: Any  # ActorAddress of the owner's inbox
    owner_id: WorkerID
    max_retries: int = 3
    # Retried on application exceptions; which ones only the owner knows (``TaskSubmitter``):
    # the classes may not be importable where the spec goes (see docs/design.md,
    # "Thespian: message classes must be importable").
    retry_exceptions: bool = False
    attempt: int = 0
    scheduling_strategy: Any = None
    actor_id: ActorID | None = None  # set for actor creation and method calls
    actor_creation: bool = False
    method_name: str | None = None
    # Creation: max_concurrency, name, concurrency_groups. A method call: concurrency_group.
    actor_options: dict = field(default_factory=dict)
    gpu_ids: tuple = ()  # set by the local scheduler: the GPUs of the worker's lease
    generator: str | None = None  # "streaming" or "dynamic": a generator task (see api/generator.py)
    runtime_env: dict = field(default_factory=dict)  # validated, packages as gcs:// URIs; {} for none
    # 0 for a driver's task, d + 1 for one submitted by a task of depth d: a node runs its
    # deepest queued tasks first, so nested work finishes before more of it starts.
    nesting_depth: int = 0
    namespace: str = (
        ""  # the submitting job's: where get_actor() looks from the task (not set on a method call)
    )
    max_calls: int = 0  # a worker that ran the function this many times exits after it (0: no limit)
    name: str = ""  # the name options gave the task or call (the state API shows it); "": none
    # False (enable_task_events=False): the state API does not list it; an actor call sends no
    # task events at all, a task's still go to the GCS (they are its lineage), marked hidden.
    task_events: bool = True

    @property
    def display_name(self) -> str:
        """What the state API calls the task: its options' name, else its function's."""
        return self.name or self.function_name

    def __repr__(self) -> str:
        return short_repr("TaskSpec", id=self.task_id, fn=self.function_name, attempt=self.attempt)

    def next_attempt(self) -> TaskSpec:
        """This task's next try (a retry spends one of its ``max_retries``)."""
        return replace(self, attempt=self.attempt + 1)

    def at_depth(self, nesting_depth: int) -> TaskSpec:
        """This task submitted at ``nesting_depth`` (itself if it is that deep already)."""
        return self if nesting_depth == self.nesting_depth else replace(self, nesting_depth=nesting_depth)

    def with_gpu_ids(self, gpu_ids: tuple) -> TaskSpec:
        """This task on a worker whose lease holds ``gpu_ids`` (itself if they are the same)."""
        return self if gpu_ids == self.gpu_ids else replace(self, gpu_ids=gpu_ids)


pickle_through_init(globals())

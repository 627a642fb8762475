"""Objects: owners and borrowers (values, distributed reference counting), readers and
producers with their node's object store, object stores with each other (pulls over the
data plane) and with the GCS (object locations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from babyray.ids import NodeID, ObjectID, WorkerID
from babyray.protocol import Reply, pickle_through_init, short_repr


@dataclass(frozen=True, slots=True)
class ObjectValues(Reply):
    """Owner -> borrower: the values (or errors) of the requested objects."""

    values: tuple  # ((object_id, InlineValue | StoredValue | ErrorValue), ...)

    def __repr__(self) -> str:
        return short_repr("ObjectValues", req=self.req_id, n=len(self.values))


@dataclass(frozen=True, slots=True)
class GetObjects:
    """Borrower -> owner: reply to ``reply_to`` with ObjectValues as these become ready."""

    reply: ClassVar[type[Reply]] = ObjectValues

    req_id: str
    object_ids: tuple[ObjectID, ...]
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class AddBorrowers:
    """Borrower (or a process handing a ref on) -> owner: ``borrower_id`` holds these refs.

    Sent when the first ObjectRef instance of a borrowed object appears in a process; an
    owner that no longer knows an object ignores it.
    """

    borrower_id: WorkerID
    object_ids: tuple[ObjectID, ...]

    def __repr__(self) -> str:
        return short_repr("AddBorrowers", borrower=self.borrower_id, n=len(self.object_ids))


@dataclass(frozen=True, slots=True)
class DeadWorkers(Reply):
    """GCS -> asker: those of the asked workers whose death a local scheduler reported."""

    worker_ids: tuple[WorkerID, ...]


@dataclass(frozen=True, slots=True)
class FindDeadWorkers:
    """Owner or borrower -> GCS: which of these workers (or drivers) are gone? A borrower that died never sends
    RemoveBorrowers: its owner drops it on this answer. An owner that died never answers
    GetObjects: the borrower's waits for its values fail with OwnerDiedError."""

    reply: ClassVar[type[Reply]] = DeadWorkers

    req_id: str
    worker_ids: tuple[WorkerID, ...]
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class RemoveBorrowers:
    """Borrower -> owner: the last ObjectRef instance of these objects died in ``borrower_id``."""

    borrower_id: WorkerID
    object_ids: tuple[ObjectID, ...]

    def __repr__(self) -> str:
        return short_repr("RemoveBorrowers", borrower=self.borrower_id, n=len(self.object_ids))


@dataclass(frozen=True, slots=True)
class ObjectCreated(Reply):
    """Object store -> producer: write the object at ``offset`` of arena ``arena_name``."""

    object_id: ObjectID
    offset: int
    arena_name: str
    error: Any = None


@dataclass(frozen=True, slots=True)
class CreateObject:
    """Producer -> object store: reserve ``size`` bytes in the arena for ``object_id``, which
    process ``writer_id`` writes for ``owner_id`` ("": the writer; see OwnersDied)."""

    reply: ClassVar[type[Reply]] = ObjectCreated

    req_id: str
    object_id: ObjectID
    size: int
    writer_id: WorkerID = WorkerID("")
    reply_to: Any = None
    owner_id: WorkerID = WorkerID("")


@dataclass(frozen=True, slots=True)
class SealObject:
    """Producer -> object store: the object's bytes are written and immutable now.

    ``reserved_offset`` names the spare slot the bytes went to (store/alloc_channel.py), or -1
    when the slot was allocated for this object.
    """

    object_id: ObjectID
    size: int
    writer_id: WorkerID = WorkerID("")
    reserved_offset: int = -1


@dataclass(frozen=True, slots=True)
class ObjectsPinned(Reply):
    """Object store -> reader: ``slots`` maps object id to (offset, size)."""

    arena_name: str
    slots: dict
    error: Any = None


@dataclass(frozen=True, slots=True)
class PinObjects:
    """Reader -> object store: reply with the objects' slots, pinned until Unpin."""

    reply: ClassVar[type[Reply]] = ObjectsPinned

    req_id: str
    object_ids: tuple[ObjectID, ...]
    reader_id: str = ""
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class UnpinObjects:
    """Reader -> object store: values read from these slots are gone."""

    object_ids: tuple[ObjectID, ...]
    reader_id: str = ""


@dataclass(frozen=True, slots=True)
class FreeObjects:
    """Owner -> object store: no reference to these objects remains.

    ``writer_died``: their writer died (the owner took its task's failure), so those not
    sealed yet never will be: they go at once instead of at a seal.
    """

    object_ids: tuple[ObjectID, ...]
    writer_died: bool = False


@dataclass(frozen=True, slots=True)
class OwnersDied:
    """GCS -> every node's object store and local scheduler: these workers or drivers died. As
    in Ray, the objects they owned are freed (nobody can read them again: their borrowers get
    OwnerDiedError), and the tasks they submitted are cancelled (nobody can take the results)."""

    worker_ids: tuple[WorkerID, ...]


@dataclass(frozen=True, slots=True)
class ObjectLocations:
    """Object stores -> GCS: objects added to (or removed from) a node, with sizes."""

    node_id: NodeID
    added: tuple  # ((object_id, size), ...)
    removed: tuple = ()

    def __repr__(self) -> str:
        return short_repr(
            "ObjectLocations", node=self.node_id, added=len(self.added), removed=len(self.removed)
        )


@dataclass(frozen=True, slots=True)
class PullObject:
    """Reader -> its node's object store: fetch ``object_id`` from ``source_store`` if missing,
    then reply ObjectsPinned as PinObjects does."""

    reply: ClassVar[type[Reply]] = ObjectsPinned

    req_id: str
    object_id: ObjectID
    size: int
    source_store: Any
    source_node: NodeID
    reader_id: str = ""
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class ObjectServed(Reply):
    """Holding store -> puller: read [offset, offset+size) from the data plane at host:port."""

    object_id: ObjectID
    offset: int
    size: int
    host: str
    port: int
    error: Any = None


@dataclass(frozen=True, slots=True)
class ServeObject:
    """Pulling object store -> holding object store: pin ``object_id`` for ``reader_id`` (the
    puller's node id, which its UnpinObjects names), reply ObjectServed."""

    reply: ClassVar[type[Reply]] = ObjectServed

    req_id: str
    object_id: ObjectID
    reply_to: Any = None
    reader_id: str = ""


@dataclass(frozen=True, slots=True)
class PullDone:
    """Object store's transfer thread -> the store itself: a pull finished (or failed)."""

    object_id: ObjectID
    error: Any = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class TransferAddress(Reply):
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class GetTransferAddress:
    """A client without the store's arena mapped -> object store: reply TransferAddress."""

    reply: ClassVar[type[Reply]] = TransferAddress

    req_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class StoreStats(Reply):
    """Object store -> requester: ``stats`` is a flat dict of byte and object counts."""

    node_id: NodeID
    stats: dict


@dataclass(frozen=True, slots=True)
class GetStoreStats:
    """Anyone -> object store: reply StoreStats; with ``objects``, each object's state too."""

    reply: ClassVar[type[Reply]] = StoreStats

    req_id: str
    reply_to: Any = None
    objects: bool = False


pickle_through_init(globals())

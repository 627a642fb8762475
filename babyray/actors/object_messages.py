"""Messages of object lifetime: distributed reference counting and the store's memory report.

Kept apart from ``messages.py`` (one module per protocol, STYLE) but with the same rules:
frozen, slotted dataclasses importable by module path (DESIGN trap 4), a ``req_id`` on
every request, cheap ``__repr__`` where a message may be long (trap 7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from babyray.actors.messages import InlineValue, StoredValue, _short


# ---- value records that hold the refs contained in the value ---------------------------


@dataclass(frozen=True, slots=True)
class InlineValueRefs(InlineValue):
    """An InlineValue whose bytes contain ObjectRefs: ``refs`` keeps them alive.

    The refs travel with the record (unpickling them registers the receiving process as a
    borrower), so the inner objects live at least as long as whoever holds the record: the
    outer object's owner (its ``owned`` entry) or a borrower's cache.
    """

    refs: tuple = ()

    def __repr__(self) -> str:
        return _short("InlineValueRefs", size=len(self.blob), refs=len(self.refs))


@dataclass(frozen=True, slots=True)
class StoredValueRefs(StoredValue):
    """A StoredValue whose bytes contain ObjectRefs: ``refs`` keeps them alive (see above)."""

    refs: tuple = ()

    def __repr__(self) -> str:
        return _short("StoredValueRefs", node=self.node_id, size=self.size, refs=len(self.refs))


# ---- borrowers -> owners ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddBorrowers:
    """Borrower (or a process handing a ref on) -> owner: ``borrower_id`` holds these refs.

    Sent when the first ObjectRef instance of a borrowed object appears in a process; an
    owner that no longer knows an object ignores it.
    """

    borrower_id: str
    object_ids: tuple

    def __repr__(self) -> str:
        return _short("AddBorrowers", borrower=self.borrower_id, n=len(self.object_ids))


@dataclass(frozen=True, slots=True)
class RemoveBorrowers:
    """Borrower -> owner: the last ObjectRef instance of these objects died in ``borrower_id``."""

    borrower_id: str
    object_ids: tuple

    def __repr__(self) -> str:
        return _short("RemoveBorrowers", borrower=self.borrower_id, n=len(self.object_ids))


# ---- memory report ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetStoreStats:
    """Anyone -> object store: reply StoreStats; with ``objects``, each object's state too."""

    req_id: str
    reply_to: Any = None
    objects: bool = False


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Object store -> requester: ``stats`` is a flat dict of byte and object counts."""

    req_id: str
    node_id: str
    stats: dict

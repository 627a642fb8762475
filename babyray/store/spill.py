"""Spill files: object slots copied to disk when the arena is full, read back on demand.

One file per object, named after its id, holding the slot's bytes exactly as they were in
the arena (the layout of ``babyray.serialization``), so a restored slot is read like any
other. Files are written straight from the arena view and restored with ``readinto``
into the new slot: no intermediate copy in either direction.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from babyray.ids import ObjectID

__all__ = ["SpillDir"]

_log = structlog.get_logger(__name__)


class SpillDir:
    """The spill files of one node's object store, kept in ``directory``.

    Used by the object store actor only; not thread-safe. ``cleanup`` removes every file
    this instance wrote, and the directory if this instance created it.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._created_dir = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sizes: dict[ObjectID, int] = {}

    def __repr__(self) -> str:
        return f"SpillDir({str(self.directory)!r}, {len(self._sizes)} objects)"

    def __contains__(self, object_id: ObjectID) -> bool:
        return object_id in self._sizes

    def path(self, object_id: ObjectID) -> Path:
        if not object_id.isalnum():
            raise ValueError(f"bad object id {object_id!r}")
        return self.directory / f"{object_id}.obj"

    def size(self, object_id: ObjectID) -> int:
        """Bytes spilled for ``object_id`` (the slot size to allocate on restore).

        Raises:
            KeyError: if the object is not spilled here.
        """
        return self._sizes[object_id]

    def spill(self, object_id: ObjectID, region: memoryview) -> None:
        """Write ``region`` (an object's slot) to the object's file, replacing any old one.

        Raises:
            OSError: if the write fails (e.g. ENOSPC); no partial file is left behind.
        """
        path = self.path(object_id)
        view = memoryview(region).cast("B")
        try:
            with open(path, "wb", buffering=0) as f:
                while view:
                    view = view[f.write(view) :]
        except OSError:
            path.unlink(missing_ok=True)
            self._sizes.pop(object_id, None)
            raise
        self._sizes[object_id] = region.nbytes
        _log.debug("object_spilled", object_id=object_id, size=region.nbytes)

    def restore(self, object_id: ObjectID, dest: memoryview | bytearray) -> int:
        """Read the object's bytes into the start of ``dest``; returns how many were read.

        The file stays until ``delete``, so a restored copy that is evicted again needs no
        new write.

        Raises:
            KeyError: if the object is not spilled here.
            ValueError: if ``dest`` is smaller than the object.
            EOFError: if the file is shorter than what was spilled.
        """
        size = self._sizes[object_id]
        view = memoryview(dest).cast("B")
        if view.nbytes < size:
            raise ValueError(f"restore of {object_id} needs {size} bytes, got {view.nbytes}")
        view = view[:size]
        with open(self.path(object_id), "rb", buffering=0) as f:
            while view:
                n = f.readinto(view)
                if not n:
                    raise EOFError(f"spill file of {object_id} is truncated")
                view = view[n:]
        _log.debug("object_restored", object_id=object_id, size=size)
        return size

    def delete(self, object_id: ObjectID) -> None:
        """Remove the object's file; a no-op if it is not spilled here."""
        if self._sizes.pop(object_id, None) is not None:
            self.path(object_id).unlink(missing_ok=True)

    def cleanup(self) -> None:
        """Remove every spill file, and the directory if this instance made it."""
        for object_id in list(self._sizes):
            self.delete(object_id)
        if self._created_dir:
            try:
                self.directory.rmdir()
            except OSError as exc:  # someone else put files there: leave them
                _log.warning("spill_dir_not_removed", directory=str(self.directory), error=repr(exc))
        _log.debug("spill_dir_cleaned", directory=str(self.directory))

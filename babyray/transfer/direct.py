"""Object access for a client with no store on its host (a driver on a host without a node).

Such a client cannot map the node's arena: it reserves and pins slots in a remote store
through Thespian as usual, and moves the bytes over the data plane into or out of its own
private memory. Used by ``CoreClient`` when ``remote_store_io`` is set.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from babyray import serialization
from babyray.actors.batching import address_key
from babyray.ids import ObjectID
from babyray.protocol import objects as om
from babyray.protocol import values as vm
from babyray.transfer.tcp import TcpDataPlane

if TYPE_CHECKING:
    from babyray.api.core import CoreClient


class DirectStoreIO:
    """Reads and writes objects of remote stores for one CoreClient (thread-safe)."""

    def __init__(self, core: CoreClient) -> None:
        self.core = core
        self.plane = TcpDataPlane()
        self.addresses: dict[Any, tuple[str, int]] = {}
        self.lock = threading.Lock()

    def address(self, store: Any, deadline: float | None = None) -> tuple[str, int]:
        key = address_key(store)
        with self.lock:
            found = self.addresses.get(key)
        if found is None:
            reply = self.core.request_by(store, lambda r: om.GetTransferAddress(r), deadline)
            found = (reply.host, reply.port)
            with self.lock:
                self.addresses[key] = found
        return found

    def read(self, oid: ObjectID, value: vm.StoredValue, deadline: float | None = None) -> Any:
        """Copy object ``oid`` from the store in ``value`` into private memory; deserialize it.

        Raises:
            GetTimeoutError: the store did not answer before ``deadline`` (``time.monotonic()``).
        """
        core = self.core
        reply = core.request_by(value.store, lambda r: om.PinObjects(r, (oid,), core.identity), deadline)
        if reply.error is not None:
            raise serialization.deserialize(reply.error)
        offset, size = reply.slots[oid]
        buffer = np.empty(size, np.uint8)
        try:
            host, port = self.address(value.store, deadline)
            self.plane.read_into(host, port, offset, buffer.data)
        finally:
            core.transport.send(value.store, om.UnpinObjects((oid,), core.identity))
        return serialization.deserialize(buffer.data)

    def write(self, store: Any, offset: int, serialized: serialization.SerializedObject) -> None:
        """Write ``serialized`` into the slot at ``offset`` of ``store``'s arena."""
        buffer = np.empty(serialized.total_size, np.uint8)
        serialized.write_to(buffer.data)
        host, port = self.address(store)
        self.plane.write_from(host, port, offset, buffer.data)

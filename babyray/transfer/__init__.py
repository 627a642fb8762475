"""The data plane: object bytes between nodes over plain sockets, beside Thespian.

Thespian messages carry the control (who serves which object where); the bytes move
through a ``DataPlane`` implementation: ``TcpDataPlane`` between hosts (chunked, several
streams for large objects) or ``InProcessDataPlane`` for tests. Nothing else in babyray
opens data sockets.
"""

from babyray.transfer.base import DataPlane, TransferError, parse_address, split_ranges
from babyray.transfer.inprocess import InProcessDataPlane
from babyray.transfer.tcp import TcpDataPlane, TransferServer

__all__ = [
    "DataPlane",
    "InProcessDataPlane",
    "TcpDataPlane",
    "TransferError",
    "TransferServer",
    "parse_address",
    "split_ranges",
]

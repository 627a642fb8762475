"""The data-plane interface: read or write a byte range of a remote node's arena."""

from __future__ import annotations

from typing import Protocol

CHUNK = 4 << 20  # bytes per send/recv call
STREAM_MIN = 8 << 20  # ranges at least this large are split over several streams
DEFAULT_STREAMS = 4


class TransferError(ConnectionError):
    """A transfer failed: the peer is gone, refused, or closed the stream early."""


class DataPlane(Protocol):
    """Moves bytes between this process and a node's data-plane server at ``host:port``.

    ``read_into`` fills ``dest`` with the remote range [offset, offset + len(dest));
    ``write_from`` stores ``src`` at the remote range starting at ``offset``. Both block
    until done and raise ``TransferError`` on failure. Callers run them off any actor loop.
    """

    def read_into(self, host: str, port: int, offset: int, dest: memoryview, streams: int = ...) -> None: ...

    def write_from(self, host: str, port: int, offset: int, src: memoryview, streams: int = ...) -> None: ...


def parse_address(address: str, default_port: int = 0) -> tuple[str, int]:
    """``"host:port"`` -> (host, port); a bare host gets ``default_port``."""
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    if not host:
        raise ValueError(f"bad address {address!r}: expected HOST:PORT")
    return host, int(port)


def split_ranges(size: int, streams: int, minimum: int = STREAM_MIN) -> list[tuple[int, int]]:
    """Split [0, size) into up to ``streams`` (start, length) ranges of at least ``minimum``."""
    count = max(1, min(streams, size // max(minimum, 1)))
    step = -(-size // count)
    return [(start, min(step, size - start)) for start in range(0, size, step)] or [(0, 0)]

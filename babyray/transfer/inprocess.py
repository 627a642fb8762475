"""An in-process data plane: 'servers' are buffers registered under (host, port). For tests."""

from __future__ import annotations

from babyray.transfer.base import TransferError


class InProcessDataPlane:
    def __init__(self) -> None:
        self.buffers: dict[tuple[str, int], memoryview] = {}

    def register(self, host: str, port: int, buffer: memoryview) -> None:
        self.buffers[(host, port)] = memoryview(buffer).cast("B")

    def _buffer(self, host: str, port: int) -> memoryview:
        try:
            return self.buffers[(host, port)]
        except KeyError:
            raise TransferError(f"nothing serves {host}:{port}") from None

    def read_into(self, host: str, port: int, offset: int, dest: memoryview, streams: int = 1) -> None:
        dest = memoryview(dest).cast("B")
        dest[:] = self._buffer(host, port)[offset : offset + len(dest)]

    def write_from(self, host: str, port: int, offset: int, src: memoryview, streams: int = 1) -> None:
        src = memoryview(src).cast("B")
        self._buffer(host, port)[offset : offset + len(src)] = src

"""The TCP data plane: a server thread per node object store, clients in readers' stores.

Wire protocol, one request per connection. With authentication on, the connection first
proves the cluster token both ways (babyray.auth: the server's nonce, the client's nonce and
HMAC, the server's HMAC, which the client checks before it reads or sends any data); a
client that fails is logged (``auth_rejected``) and dropped. Then the client sends a 25-byte header
(magic ``BRDP``, op 0=read / 1=write, offset, size, all big-endian). For a read the server
streams the range; for a write the client streams it and the server answers one byte once
it is stored. Large ranges are split over several connections that run in parallel.
The server listens only on the node's own address.
"""

from __future__ import annotations

import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from babyray import auth
from babyray.transfer.base import CHUNK, DEFAULT_STREAMS, TransferError, split_ranges

_HEADER = struct.Struct("!4sBQQ")
_MAGIC = b"BRDP"
OP_READ, OP_WRITE = 0, 1
CONNECT_TIMEOUT = 10.0
IO_TIMEOUT = 60.0
SOCKET_BUFFER = 4 << 20
CHANNEL = "data_plane"


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except OSError:
            pass


def _recv_exactly(sock: socket.socket, dest: memoryview) -> None:
    got = 0
    while got < len(dest):
        n = sock.recv_into(dest[got : got + CHUNK])
        if n == 0:
            raise TransferError(f"peer closed the stream after {got} of {len(dest)} bytes")
        got += n


def _send_all(sock: socket.socket, src: memoryview) -> None:
    for start in range(0, len(src), CHUNK):
        sock.sendall(src[start : start + CHUNK])


class TransferServer:
    """Serves ranges of one buffer (a node's arena) to other nodes; runs in daemon threads.

    ``view(offset, size)`` returns the writable memoryview of a range (the arena's
    ``view``). Made by the object store at start-up; ``close()`` stops accepting.
    """

    def __init__(self, host: str, view: Callable[[int, int], memoryview], port: int = 0) -> None:
        self.view = view
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.host, self.port = self.sock.getsockname()[:2]
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="babyray-transfer-server", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(conn, peer), name="babyray-transfer-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket, peer: tuple) -> None:
        with conn:
            try:
                _tune(conn)
                conn.settimeout(IO_TIMEOUT)
                auth.accept_peer(conn, CHANNEL)
            except auth.AuthRejected as exc:
                auth.log_rejected(CHANNEL, f"{peer[0]}:{peer[1]}", str(exc))
                return
            except OSError:
                return
            try:
                header = bytearray(_HEADER.size)
                _recv_exactly(conn, memoryview(header))
                magic, op, offset, size = _HEADER.unpack(header)
                if magic != _MAGIC:
                    return
                region = self.view(offset, size)
                if op == OP_READ:
                    _send_all(conn, region)
                elif op == OP_WRITE:
                    _recv_exactly(conn, region)
                    conn.sendall(b"\x01")
            except (OSError, TransferError, ValueError):
                return  # the client sees the stream end early and reports it

    def close(self) -> None:
        """Stop listening; shutdown() wakes the thread blocked in accept(), close() alone does not."""
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TcpDataPlane:
    """Client side: read or write a range of a remote server, over ``streams`` connections."""

    def __init__(self, streams: int = DEFAULT_STREAMS) -> None:
        self.streams = streams

    def _one(self, host: str, port: int, op: int, offset: int, buf: memoryview) -> None:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock:
                _tune(sock)
                sock.settimeout(IO_TIMEOUT)
                server_proof = auth.prove_to_peer(sock, CHANNEL)
                sock.sendall(_HEADER.pack(_MAGIC, op, offset, len(buf)))
                auth.check_peer_proof(sock, server_proof, CHANNEL)
                if op == OP_READ:
                    _recv_exactly(sock, buf)
                else:
                    _send_all(sock, buf)
                    ack = bytearray(1)
                    _recv_exactly(sock, memoryview(ack))
        except (OSError, auth.AuthRejected) as exc:
            raise TransferError(f"transfer with {host}:{port} failed: {exc}") from exc

    def _run(self, host: str, port: int, op: int, offset: int, buf: memoryview, streams: int | None) -> None:
        buf = memoryview(buf).cast("B")
        ranges = split_ranges(len(buf), streams or self.streams)
        if len(ranges) == 1:
            self._one(host, port, op, offset, buf)
            return
        with ThreadPoolExecutor(len(ranges), thread_name_prefix="babyray-transfer") as pool:
            futures = [
                pool.submit(self._one, host, port, op, offset + start, buf[start : start + length])
                for start, length in ranges
            ]
            for future in futures:
                future.result()

    def read_into(
        self, host: str, port: int, offset: int, dest: memoryview, streams: int | None = None
    ) -> None:
        self._run(host, port, OP_READ, offset, dest, streams)

    def write_from(
        self, host: str, port: int, offset: int, src: memoryview, streams: int | None = None
    ) -> None:
        self._run(host, port, OP_WRITE, offset, src, streams)

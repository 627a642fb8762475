"""A fast path for reserving arena slots from processes on the store's own node.

A ``put`` of a large object needs a slot before it can write. Asking the object store actor
through Thespian costs a control-plane round trip (~0.5 ms between actors, 2-3 ms from a
driver's external context), which dominates puts of 128 KB-10 MB objects. The store also
serves slot reservations on a Unix socket beside Thespian, answered by a thread of the store
actor under the store's state lock. The put then seals the object with a one-way message
on the channel (``seal``), which the store handles as a SealObject through Thespian: so a
``get`` right after a ``put`` finds the object sealed, as the seal went first on the same
connection.

A read pins its object on the channel too (``pin``): the store answers at once with the
slots of objects that are sealed and in memory (the reply PinObjects would give), and tells
the client to ask through Thespian otherwise (spilled: a restore is file I/O; absent; or
still unsealed after a short wait, as when another process's seal is on its way).
Unpins stay one-way Thespian messages: a reader sends one only after its pin was answered.

Every pin names its reader (the process's worker id), and the store counts pins per reader
(``ObjectTable``): a reader's unpins release only pins it holds, and when a reader's
connection closes (the process exited or was killed) the store releases every pin that reader
still holds, those taken through Thespian too, so a process that dies while it reads leaves
nothing pinned. A seal can keep its object pinned for its writer (``seal(..., hold=True)``),
and ``unpin`` on the channel releases pins: a process's held pins (``babyray.api.held_pins``)
let a ``get`` of an object it just put or read map the slot without asking the store.

Even the channel's round trip (~0.1-1 ms, the store's process is busy sealing the previous objects)
is most of a 1 MB put, so the client keeps it off the critical path: after each put it asks,
without waiting, for a *spare* slot of the same size, which the next put of that size takes
at once. The put tells the store on the channel, without waiting, which object takes the
spare (``take``) before it writes, and names the spare slot in its ``SealObject``
(``reserved_offset``); whichever of the two the store reads first files the object there.
So a writer killed right after its seal was sent loses nothing: its connection closes after
the take, and only the spares it never took are freed. A spare is only granted from free
space (the store never evicts or spills for a guess); a put of another size releases it.

The socket is in the abstract namespace, named after the node's arena (whose name holds the
store's pid), so no file is left behind when the store is killed: the kernel drops the name
with the process. Only processes of the store's network namespace can reach it, which are
the processes of its node. An abstract socket has no file permissions, so both ends check
the other's user (``SO_PEERCRED``) as a 0600 socket file would: the store drops a connection
of another user before reading a byte (even with authentication disabled), and a client
refuses a listener of another user (one that took the name first). Each connection then
proves the cluster token (babyray.auth) before a request is read.
"""

from __future__ import annotations

import itertools
import os
import pickle
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from babyray import auth, log
from babyray.ids import ObjectID, WorkerID
from babyray.store.allocator import Allocator

_LEN = struct.Struct("<I")

Allocate = Callable[
    [ObjectID, int, WorkerID, WorkerID], tuple[int, bytes | None]
]  # (oid, size, writer, owner) -> (offset, error)
Reserve = Callable[[int, int], int | None]  # (client, size) -> offset of a spare slot, or None
Release = Callable[[int, list[int] | None], None]  # (client, its spares to free; None: all, it left)
Take = Callable[
    [ObjectID, int, WorkerID, int, WorkerID], None
]  # (oid, size, writer, offset of the spare it is written into, owner)
# (oids, reader) -> (arena path, {oid: (offset, size)}) with every object pinned, or None: ask
# through Thespian
Pin = Callable[[tuple[ObjectID, ...], str], tuple[str, dict[ObjectID, tuple[int, int]]] | None]
# (oid, size, writer, offset of its spare or -1, keep it pinned for the writer)
Seal = Callable[[ObjectID, int, WorkerID, int, bool], None]
Unpin = Callable[[tuple[ObjectID, ...], str], None]  # (oids, reader): one pin of each released
ReaderGone = Callable[[str], None]  # (reader): release every pin it holds

_ALLOC, _RESERVE, _RELEASE, _TAKE = "alloc", "reserve", "release", "take"
_PIN, _SEAL, _UNPIN, _READER = "pin", "seal", "unpin", "reader"
SPARE_FRACTION = 64  # a spare slot is at most this fraction of the arena
KEEP_FREE_FRACTION = 4  # and is only granted while this fraction of the arena stays free


class SpareSlots:
    """The spare slots granted to the channel's clients: offset -> (size as allocated, client).

    The one record of them: the store's stats, a put sealed into a spare (``claim``) and the
    release of a client's spares when it leaves all read it. Not thread-safe: the store calls
    it under its state lock.
    """

    def __init__(self, allocator: Allocator) -> None:
        self.allocator = allocator
        self._slots: dict[int, tuple[int, int]] = {}

    def reserve(self, client: int, size: int) -> int | None:
        """A slot for ``client``'s next put of ``size`` bytes, only from free space: a guess never
        evicts, spills or crowds out a put."""
        capacity = self.allocator.capacity
        if (
            size > capacity // SPARE_FRACTION
            or self.allocator.free_bytes - size < capacity // KEEP_FREE_FRACTION
        ):
            return None
        used = self.allocator.used
        offset = self.allocator.alloc(size)
        if offset is not None:
            self._slots[offset] = (self.allocator.used - used, client)
        return offset

    def release(self, client: int, offsets: list[int] | None = None) -> None:
        """Free ``client``'s spares at ``offsets`` (None: all of them)."""
        if offsets is None:
            offsets = [offset for offset, (_, owner) in self._slots.items() if owner == client]
        for offset in offsets:
            if self._slots.get(offset, (0, None))[1] == client:
                del self._slots[offset]
                self.allocator.free(offset)

    def claim(self, offset: int) -> bool:
        """A put sealed into the spare at ``offset``: True if it was still reserved."""
        return self._slots.pop(offset, None) is not None

    @property
    def bytes(self) -> int:
        return sum(size for size, _ in self._slots.values())


CHANNEL = "alloc_channel"


def socket_name(arena_name: str) -> str:
    """The channel's address in the abstract namespace (the leading NUL byte)."""
    return f"\0babyray-alloc-{arena_name}"


class OtherUser(OSError):
    """The process at the other end of the channel runs as another user."""


def _peer(conn: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    return pid, uid


def _check_same_user(conn: socket.socket) -> None:
    """Raises OtherUser: the peer is not of this process's user."""
    pid, uid = _peer(conn)
    if uid != os.getuid():
        raise OtherUser(f"pid {pid} runs as user {uid}, not {os.getuid()}")


def _send(conn: socket.socket, payload: Any) -> None:
    data = pickle.dumps(payload, protocol=5)
    conn.sendall(_LEN.pack(len(data)) + data)


def _recv(conn: socket.socket) -> Any:
    head = _recv_exact(conn, _LEN.size)
    return pickle.loads(_recv_exact(conn, _LEN.unpack(head)[0]))


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = conn.recv(n - got)
        if not chunk:
            raise ConnectionError("allocation channel closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class AllocServer:
    """Runs in the object store actor's process: one thread per connected client, each client
    known to ``reserve`` and ``release`` by a number of its own."""

    def __init__(
        self,
        arena_name: str,
        allocate: Allocate,
        reserve: Reserve,
        release: Release,
        take: Take,
        pin: Pin | None = None,
        seal: Seal | None = None,
        unpin: Unpin | None = None,
        reader_gone: ReaderGone | None = None,
    ) -> None:
        """``pin``, ``seal``, ``unpin`` and ``reader_gone`` None: a server of slots only, without an
        object table (tests of the spare slots); every pin is told to ask through Thespian."""
        self._allocate = allocate
        self._reserve = reserve
        self._release = release
        self._take = take
        self._pin = pin
        self._seal = seal
        self._unpin = unpin
        self._reader_gone = reader_gone
        self._clients = itertools.count()  # not the fd: a new connection may reuse it at once
        # reader -> its open connections: a process can open a second one (two threads' first
        # puts at once), and only when its last closes has it left
        self._connections_of: Counter[str] = Counter()
        self._readers_lock = threading.Lock()
        self.name = socket_name(arena_name)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.name)
        self._sock.listen(64)
        self._closed = False
        self.log = log.get_logger("alloc_channel")
        threading.Thread(target=self._accept_loop, name="babyray-alloc-accept", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="babyray-alloc", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        client = next(self._clients)
        readers: set[str] = set()  # the readers that pinned or sealed on this connection
        with conn:
            try:
                _check_same_user(conn)
                auth.accept_peer(conn, CHANNEL)
            except (auth.AuthRejected, OtherUser) as exc:
                auth.log_rejected(CHANNEL, _peer_credentials(conn), str(exc))
                return
            except OSError:
                return
            try:
                while True:
                    self._answer(conn, client, readers, _recv(conn))
            except (ConnectionError, OSError, EOFError):
                pass  # the client went away
        self._release(client, None)
        left = self._left(readers)
        if self._reader_gone is not None:
            for reader in left:
                self._reader_gone(reader)

    def _answer(self, conn: socket.socket, client: int, readers: set[str], request: tuple) -> None:
        if request[0] == _RELEASE:
            self._release(client, [request[1]])
            return
        if request[0] == _TAKE:
            _, offset, oid, size, writer, owner = request
            self._take(oid, size, writer, offset, owner)
            return
        if request[0] == _RESERVE:
            offset = self._reserve(client, request[1])
            _send(conn, -1 if offset is None else offset)
            return
        if request[0] == _PIN:
            _, oids, reader = request
            self._named(readers, reader)
            _send(conn, self._pin_answer(oids, reader))
            return
        if request[0] == _READER:  # the client names itself as it connects
            self._named(readers, request[1])
            return
        if request[0] == _UNPIN:
            _, oids, reader = request
            if self._unpin is not None:
                self._unpin(oids, reader)
            return
        if request[0] == _SEAL:
            _, oid, size, writer, offset, hold = request
            self._named(readers, writer)
            try:
                if self._seal is None:
                    raise RuntimeError("this channel serves no seals")
                self._seal(oid, size, writer, offset, hold)
            except Exception:  # the connection and the client's spares stay: it may put again
                self.log.exception("alloc_channel_seal_failed", object_id=oid)
            return
        _, oid, size, writer, owner = request
        try:
            reply = self._allocate(oid, size, writer, owner)
        except Exception as exc:  # answer the client rather than leave it waiting
            self.log.exception("alloc_channel_failed", object_id=oid, size=size)
            reply = (-1, pickle.dumps(RuntimeError(f"allocating {size} bytes for {oid} failed: {exc}")))
        _send(conn, reply)

    def _named(self, readers: set[str], reader: str) -> None:
        """``reader`` read or wrote on the connection whose readers are ``readers``."""
        if reader not in readers:
            readers.add(reader)
            with self._readers_lock:
                self._connections_of[reader] += 1

    def _left(self, readers: set[str]) -> list[str]:
        """The readers of a closed connection that have no other connection open."""
        with self._readers_lock:
            self._connections_of.subtract(readers)
            left = [reader for reader in readers if self._connections_of[reader] <= 0]
            for reader in left:
                del self._connections_of[reader]
        return left

    def _pin_answer(
        self, oids: tuple[ObjectID, ...], reader: str
    ) -> tuple[str, dict[ObjectID, tuple[int, int]]] | None:
        if self._pin is None:
            return None
        try:
            return self._pin(oids, reader)
        except Exception:  # the client asks through Thespian, which reports the failure
            self.log.exception("alloc_channel_pin_failed", object_ids=list(oids))
            return None

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


def _peer_credentials(conn: socket.socket) -> str:
    """ "pid P uid U" of the process at the other end of a Unix socket."""
    try:
        return "pid {} uid {}".format(*_peer(conn))
    except OSError:
        return "unknown"


class AllocClient:
    """Used by drivers and workers on the store's node; thread-safe (one request at a time).

    ``allocate`` returns ``(offset, error, reserved)``: ``reserved`` is True when the slot is
    a spare, which the put must name in its ``SealObject``.
    """

    def __init__(self, arena_name: str, reader: str = "") -> None:
        """``reader``: the worker id this process reads as; the store releases that reader's pins
        when this connection closes. Raises OSError: no channel for ``arena_name`` here, or it
        did not prove the token."""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(socket_name(arena_name))
            _check_same_user(self._sock)
            auth.check_peer_proof(self._sock, auth.prove_to_peer(self._sock, CHANNEL), CHANNEL)
            if reader:
                _send(self._sock, (_READER, reader))
        except (OSError, auth.AuthRejected) as exc:
            self._sock.close()
            raise ConnectionRefusedError(f"allocation channel of {arena_name}: {exc}") from exc
        self._lock = threading.Lock()
        self._asked: int | None = None  # size of the spare asked for, reply not read yet
        self._spare: tuple[int, int] | None = None  # (size, offset) held for the next put

    def allocate(
        self, oid: ObjectID, size: int, writer: str, owner: str = ""
    ) -> tuple[int, bytes | None, bool]:
        """A slot for ``oid`` that process ``writer`` writes, for ``owner`` ("": the writer):
        (offset, pickled error or None, whether it is the spare reserved after the last put)."""
        with self._lock:
            self._read_spare()
            spare, self._spare = self._spare, None
            if spare is not None and spare[0] == size:
                _send(self._sock, (_TAKE, spare[1], oid, size, writer, owner or writer))
                self._ask_spare(size)
                return spare[1], None, True
            if spare is not None:
                _send(self._sock, (_RELEASE, spare[1]))
            _send(self._sock, (_ALLOC, oid, size, writer, owner or writer))
            offset, error = _recv(self._sock)
            if error is None:
                self._ask_spare(size)
            return offset, error, False

    def pin(
        self, oids: tuple[ObjectID, ...], reader: str
    ) -> tuple[str, dict[ObjectID, tuple[int, int]]] | None:
        """Pin ``oids`` in the store for ``reader``: (arena path, {oid: (offset, size)}), each
        pinned once more, or None: none was pinned, ask through Thespian. Each pin is released by
        an UnpinObjects through Thespian or an ``unpin`` here, or when the reader's channel closes.

        Raises:
            OSError: the channel is closed (the store is gone).
        """
        with self._lock:
            self._read_spare()
            _send(self._sock, (_PIN, oids, reader))
            answer: tuple[str, dict[ObjectID, tuple[int, int]]] | None = _recv(self._sock)
            return answer

    def seal(
        self, oid: ObjectID, size: int, writer: WorkerID, reserved_offset: int, hold: bool = False
    ) -> None:
        """The put of ``oid`` is written (into its spare at ``reserved_offset``, else -1): one-way,
        as a SealObject; with ``hold``, the object stays pinned for its ``writer`` (as by
        ``pin``). Raises OSError: the channel is closed (the store is gone)."""
        with self._lock:
            _send(self._sock, (_SEAL, oid, size, writer, reserved_offset, hold))

    def unpin(self, oids: tuple[ObjectID, ...], reader: str) -> None:
        """Release one of ``reader``'s pins of each of ``oids``: one-way.
        Raises OSError: the channel is closed."""
        with self._lock:
            _send(self._sock, (_UNPIN, oids, reader))

    def _ask_spare(self, size: int) -> None:
        _send(self._sock, (_RESERVE, size))
        self._asked = size

    def _read_spare(self) -> None:
        """Read the answer to the spare asked for after the last put, if not read yet. Locked."""
        if self._asked is not None:
            offset = _recv(self._sock)
            if offset >= 0:
                self._spare = (self._asked, offset)
            self._asked = None

    def close(self) -> None:
        self._sock.close()

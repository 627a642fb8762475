"""The allocation channel's spare slots: a put of the size just put takes a slot reserved in
advance (and says so before it writes), a put of another size gives it back, and a client
that goes away frees the spares it did not take."""

from __future__ import annotations

import gc
import os
import signal
import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import eventually

import babyray as ray
from babyray import auth
from babyray.session import session_pids
from babyray.store.alloc_channel import AllocClient, AllocServer, SpareSlots
from babyray.store.allocator import Allocator

MB = 1024 * 1024


class _Store:
    """What the object store gives the server: an allocator and its spare slots behind a lock."""

    def __init__(self, capacity: int) -> None:
        self.allocator = Allocator(capacity)
        self.spares = SpareSlots(self.allocator)
        self.lock = threading.Lock()
        self.taken: dict[int, str] = {}  # spare offset -> object put there

    def allocate(self, oid: str, size: int, writer: str, owner: str) -> tuple[int, bytes | None]:
        with self.lock:
            return self.allocator.alloc(size), None

    def reserve(self, client: int, size: int) -> int | None:
        with self.lock:
            return self.spares.reserve(client, size)

    def release(self, client: int, offsets: list[int] | None) -> None:
        with self.lock:
            self.spares.release(client, offsets)

    def take(self, oid: str, size: int, writer: str, offset: int, owner: str) -> None:
        """What the store does when a put says it writes into a spare."""
        with self.lock:
            if self.spares.claim(offset):
                self.taken[offset] = oid


@pytest.fixture
def channel():
    store = _Store(256 * MB)  # spares of up to 4 MB
    arena = f"test-{uuid.uuid4().hex}"
    server = AllocServer(arena, store.allocate, store.reserve, store.release, store.take)
    server.arena = arena
    yield store, server
    server.close()


def _client(server: AllocServer) -> AllocClient:
    return AllocClient(server.arena)


def test_a_second_put_of_the_same_size_takes_the_spare_reserved_after_the_first(channel):
    store, server = channel
    client = _client(server)
    first, error, reserved = client.allocate("a", MB, "me")
    assert (error, reserved) == (None, False)
    second, error, reserved = client.allocate("b", MB, "me")
    assert error is None and reserved and second != first
    assert eventually(lambda: store.taken.get(second) == "b")  # the store files the object there
    # The next spare was asked for at once: three 1 MB slots are taken now.
    assert eventually(lambda: store.allocator.used == 3 * MB)
    client.close()


def test_a_spare_taken_by_a_put_stays_when_its_client_leaves_before_the_seal(channel):
    """A writer killed right after it sent its seal: the channel closes before the seal is read."""
    store, server = channel
    client = _client(server)
    client.allocate("a", MB, "me")
    second, _, reserved = client.allocate("b", MB, "me")
    assert reserved
    client.close()
    # Only the spare asked for after "b" goes: "a" and "b" keep their slots.
    assert eventually(lambda: store.allocator.used == 2 * MB and not store.spares.bytes)
    assert store.taken == {second: "b"}


def test_a_put_of_another_size_releases_the_spare_and_leaving_frees_the_new_one(channel):
    store, server = channel
    client = _client(server)
    client.allocate("a", MB, "me")
    assert eventually(lambda: store.allocator.used == 2 * MB)  # the object and its spare
    offset, _, reserved = client.allocate("b", 2 * MB, "me")
    assert not reserved
    # The 1 MB spare went back; a 2 MB spare came: 1 + 2 + 2 MB.
    assert eventually(lambda: store.allocator.used == 5 * MB)
    client.close()
    assert eventually(lambda: store.allocator.used == 3 * MB)  # only the two objects remain


def test_a_spare_the_store_refuses_leaves_the_next_put_to_allocate(channel):
    store, server = channel
    server._reserve = lambda client, size: None  # e.g. the arena is nearly full
    client = _client(server)
    client.allocate("a", MB, "me")
    _, error, reserved = client.allocate("b", MB, "me")
    assert (error, reserved) == (None, False)
    assert store.allocator.used == 2 * MB
    client.close()


NOBODY = 65534


def _in_child_as_nobody(body) -> int:
    """Run ``body()`` (returns the exit status) in a forked child of user ``nobody``."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            status = body()
        finally:
            os._exit(status)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.fixture
def auth_off():
    token = auth.current_token()
    auth.use_token(None)
    yield
    auth.use_token(token)


@pytest.mark.skipif(os.getuid() != 0, reason="switching to another user needs root")
def test_another_users_connection_is_dropped_before_a_byte_is_read_even_with_auth_off(channel, auth_off):
    store, server = channel

    def put_as_nobody() -> int:
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(server.name)
            sock.settimeout(10)
            try:
                sock.sendall(b"\0" * 64)
                return 0 if sock.recv(1) == b"" else 1  # closed without an answer
            except (ConnectionResetError, BrokenPipeError):  # closed with our bytes unread, or before them
                return 0

    assert _in_child_as_nobody(put_as_nobody) == 0
    client = _client(server)  # this user's clients are served
    assert client.allocate("a", MB, "me")[1] is None
    client.close()


@pytest.mark.skipif(os.getuid() != 0, reason="switching to another user needs root")
def test_a_client_refuses_a_listener_of_another_user_that_took_the_name(auth_off):
    arena = f"test-{uuid.uuid4().hex}"
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()

    def squat() -> int:
        os.close(ready_r)
        os.close(done_w)
        server = AllocServer(
            arena,
            lambda oid, size, owner: (0, None),
            lambda c, s: None,
            lambda c, o: None,
            lambda oid, size, owner, offset: None,
        )
        os.write(ready_w, b"x")
        os.read(done_r, 1)  # until the parent tried
        server.close()
        return 0

    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            status = squat()
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(done_r)
    try:
        assert os.read(ready_r, 1) == b"x"
        with pytest.raises(ConnectionRefusedError, match="runs as user"):
            AllocClient(arena)
    finally:
        os.write(done_w, b"x")
        os.close(done_w)
        os.close(ready_r)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _channel_names() -> list[str]:
    """The abstract names of the allocation channels listening on this host's namespace."""
    with open("/proc/net/unix") as f:
        return [
            line.split()[-1] for line in f.readlines()[1:] if line.split()[-1].startswith("@babyray-alloc-")
        ]


def test_a_killed_store_leaves_no_socket_behind(cluster):
    pids_dir = Path(cluster["session_dir"]) / "pids"
    store_pid = next(
        pid
        for pid in session_pids(cluster["session_dir"])
        if (pids_dir / str(pid)).read_text() == "object_store"
    )
    ref = ray.put(np.ones(MB, dtype=np.uint8))  # the driver opens the store's channel
    assert ray.get(ref).sum() == MB
    mine = f"@babyray-alloc-/proc/{store_pid}/fd/"
    assert any(name.startswith(mine) for name in _channel_names())
    del ref
    os.kill(store_pid, signal.SIGKILL)
    assert eventually(lambda: not any(name.startswith(mine) for name in _channel_names()))
    ray.shutdown()
    # Where a socket file of the channel would be: the user's socket directory, the session's.
    places = [os.path.join(tempfile.gettempdir(), f"babyray-{os.getuid()}"), cluster["session_dir"]]
    leftovers = [
        os.path.join(root, name)
        for place in places
        for root, _, files in os.walk(place)
        for name in files
        if f"proc_{store_pid}_fd_" in name
    ]
    assert not leftovers


@ray.remote
def put_two(size: int) -> int:
    for _ in range(2):
        ray.put(np.ones(size, dtype=np.uint8))
    return os.getpid()


def _spare_bytes() -> int:
    return ray.memory_stats()[0]["spare_bytes"]


def test_puts_of_mixed_sizes_through_spares_read_back_intact(shared_cluster):
    sizes = [MB, MB, MB, 2 * MB, 2 * MB, MB, 3 * MB, 3 * MB, 3 * MB]
    refs = [ray.put(np.full(size, i % 250, dtype=np.uint8)) for i, size in enumerate(sizes)]
    for i, (ref, size) in enumerate(zip(refs, sizes, strict=True)):
        value = ray.get(ref)
        assert value.shape == (size,) and (value == i % 250).all()
    assert _spare_bytes() >= 3 * MB  # the driver holds a spare for its next 3 MB put


def test_a_killed_workers_spare_slot_is_freed(shared_cluster):
    gc.collect()
    before = _spare_bytes()
    pid = ray.get(put_two.remote(MB))
    assert eventually(lambda: _spare_bytes() >= before + MB)
    os.kill(pid, signal.SIGKILL)
    assert eventually(lambda: _spare_bytes() == before, timeout=10)


def test_a_reader_leaves_when_its_last_connection_closes_not_its_first():
    """Two threads' first puts at once can open two connections for one process."""
    store, gone = _Store(256 * MB), []
    arena = f"test-{uuid.uuid4().hex}"
    server = AllocServer(
        arena, store.allocate, store.reserve, store.release, store.take, reader_gone=gone.append
    )
    try:
        first, second = AllocClient(arena, "worker-1"), AllocClient(arena, "worker-1")
        other = AllocClient(arena, "worker-2")
        first.allocate("a", MB, "worker-1")  # each connection's reader is named before it closes
        second.allocate("b", MB, "worker-1")
        other.allocate("c", MB, "worker-2")
        second.close()
        other.close()
        assert eventually(lambda: gone == ["worker-2"])
        assert not eventually(lambda: "worker-1" in gone, timeout=0.5)
        first.close()
        assert eventually(lambda: gone == ["worker-2", "worker-1"])
    finally:
        server.close()

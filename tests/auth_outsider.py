"""An attacker without the cluster token (run as a script by tests/test_auth*.py).

Each attack delivers a pickle whose ``__reduce__`` creates ``--marker`` when unpickled:

* ``--thespian HOST:PORT``: a Thespian TCP frame (``<length>>`` + pickle) to an admin or
  actor port, as another Thespian process would send it;
* ``--data-plane HOST:PORT:OFFSET``: a data-plane write of a serialized object holding the
  pickle over the object at OFFSET of the node's arena, which the next reader unpickles;
* ``--alloc ARENA``: an allocation-channel request to the store of ARENA;
* ``--alloc-pin ARENA=OID``: a pin of object OID on that channel, after a forged answer to
  the store's challenge (it would hold the object in the store, and learn its slot).

Prints one line per attack: what the server answered (nothing, or the bytes).
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import struct


class CreatesMarker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(3.0)
    try:
        return sock.recv(4096)
    except OSError as exc:
        return repr(exc).encode()


def thespian(address: str, evil: bytes) -> str:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"{len(evil)}>".encode() + evil)
        return f"thespian {address}: {_answer(sock)!r}"


def data_plane(target: str, evil: bytes) -> str:
    from babyray.serialization import SerializedObject

    host, port, offset = target.rsplit(":", 2)
    blob = SerializedObject(evil, [], []).to_bytes()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(struct.pack("!4sBQQ", b"BRDP", 1, int(offset), len(blob)) + blob)
        return f"data plane {target}: {_answer(sock)!r}"


def alloc_channel(arena: str, evil: bytes) -> str:
    from babyray.store import alloc_channel as channel

    path = channel.socket_path(arena) if hasattr(channel, "socket_path") else f"\0babyray-alloc-{arena}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(struct.pack("<I", len(evil)) + evil)
        return f"alloc channel {arena}: {_answer(sock)!r}"


def alloc_pin(target: str) -> str:
    from babyray.store import alloc_channel as channel

    arena, _, oid = target.rpartition("=")
    path = channel.socket_path(arena) if hasattr(channel, "socket_path") else f"\0babyray-alloc-{arena}"
    request = pickle.dumps(("pin", (oid,)))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.settimeout(3.0)
        challenge = sock.recv(16)
        sock.sendall(os.urandom(16) + bytes(32) + struct.pack("<I", len(request)) + request)
        return f"alloc channel pin {oid} (challenge {len(challenge)} bytes): {_answer(sock)!r}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--marker", required=True)
    parser.add_argument("--thespian", action="append", default=[])
    parser.add_argument("--data-plane", action="append", default=[])
    parser.add_argument("--alloc", action="append", default=[])
    parser.add_argument("--alloc-pin", action="append", default=[])
    args = parser.parse_args()
    assert not os.environ.get("BABYRAY_AUTH_TOKEN") and not os.environ.get("BABYRAY_AUTH_TOKEN_PATH")
    evil = pickle.dumps(CreatesMarker(args.marker))
    for address in args.thespian:
        print(thespian(address, evil), flush=True)
    for target in args.data_plane:
        print(data_plane(target, evil), flush=True)
    for arena in args.alloc:
        print(alloc_channel(arena, evil), flush=True)
    for target in args.alloc_pin:
        print(alloc_pin(target), flush=True)


if __name__ == "__main__":
    main()

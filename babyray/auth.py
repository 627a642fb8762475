"""Cluster token authentication: where the token comes from, and the proofs peers exchange.

Every babyray process holds the cluster's token (a random 256-bit hex string) and proves
it on every connection: Thespian messages carry an HMAC-SHA256 of their pickled bytes
(``MessageSigner``, made Thespian's TCP serializer by ``babyray.thespian_patches``); the data
plane and the allocation channel run a challenge-response on each new connection
(``accept_peer`` / ``prove_to_peer``) before any byte is read as a request. Whatever does
not verify is refused before it is unpickled, and logged as ``auth_rejected``.

The token comes from, first to last: an explicit argument (``--token-file``),
``BABYRAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN``, the file named by ``BABYRAY_AUTH_TOKEN_PATH`` /
``RAY_AUTH_TOKEN_PATH``. ``BABYRAY_AUTH_MODE=disabled`` (or ``RAY_AUTH_MODE=disabled``)
turns authentication off: unsafe, anyone who reaches a port runs code in the cluster.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import pickle
import secrets
import socket
import struct
import threading
from typing import Any

from babyray import log

TOKEN_ENV = ("BABYRAY_AUTH_TOKEN", "RAY_AUTH_TOKEN")
TOKEN_PATH_ENV = ("BABYRAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN_PATH")
MODE_ENV = ("BABYRAY_AUTH_MODE", "RAY_AUTH_MODE")
TOKEN_FILE_NAME = "auth_token"

_token: bytes | None = None  # this process's cluster token; None: authentication is off
_keyed: Any = None  # an HMAC-SHA256 keyed with it, copied for each proof


class AuthConfigError(RuntimeError):
    """No usable token: a token file that cannot be read, or is empty."""


class AuthRejected(Exception):
    """A peer's proof of the token did not verify (or it sent none)."""


# ---- the token ---------------------------------------------------------------------------


def generate_token() -> str:
    return secrets.token_hex(32)


def write_token_file(path: str, token: str) -> None:
    """Write ``token`` to ``path``, readable and writable by this user only (0600)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(token + "\n")


def read_token_file(path: str) -> str:
    """The token in ``path``.

    Raises:
        AuthConfigError: the file cannot be read or is empty.
    """
    try:
        with open(os.path.expanduser(path)) as f:
            token = f.read().strip()
    except OSError as exc:
        raise AuthConfigError(f"cannot read the auth token file {path}: {exc.strerror}") from exc
    if not token:
        raise AuthConfigError(f"the auth token file {path} is empty")
    return token


def disabled_by_environment() -> bool:
    return any(os.environ.get(name, "").lower() == "disabled" for name in MODE_ENV)


def enabled_by(mode: str | None) -> bool:
    """Whether authentication is on for ``mode`` ("token" or "disabled"; None: the environment's,
    on unless ``BABYRAY_AUTH_MODE=disabled``).

    Raises:
        ValueError: another mode.
    """
    if mode is None:
        return not disabled_by_environment()
    if mode not in ("token", "disabled"):
        raise ValueError(f"auth_mode must be 'token' or 'disabled', not {mode!r}")
    return mode == "token"


def token_from_environment() -> str | None:
    """``BABYRAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN``, else the file of ``*_AUTH_TOKEN_PATH``, else None."""
    for name in TOKEN_ENV:
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    for name in TOKEN_PATH_ENV:
        if os.environ.get(name):
            return read_token_file(os.environ[name])
    return None


def use_token(token: str | None) -> None:
    """Make ``token`` this process's cluster token (and its children's: they are forked);
    None turns authentication off."""
    global _token, _keyed
    _token = token.encode() if token else None
    _keyed = hmac.new(_token, digestmod=hashlib.sha256) if _token else None


def current_token() -> str | None:
    return _token.decode() if _token else None


def _mac(*parts: bytes | memoryview) -> bytes:
    mac = _keyed.copy()
    for part in parts:
        mac.update(part)
    return mac.digest()


def _logger() -> Any:
    """This module's logger (in a Thespian admin, whose logging nobody set up, it writes into
    the session's log directory)."""
    if not log.configured_in_this_process() and os.environ.get("THESPLOG_FILE"):
        log.configure(os.path.dirname(os.environ["THESPLOG_FILE"]), "admin")
    return log.get_logger("auth")


def log_rejected(channel: str, peer: Any, reason: str, **fields: Any) -> None:
    """Log a refused connection or message."""
    _logger().warning("auth_rejected", channel=channel, peer=str(peer), reason=reason, **fields)


# ---- signed messages (Thespian) ----------------------------------------------------------

_MAGIC = b"BRA1"
_HEAD = struct.Struct("!8sQ")  # sender id, sender's message counter
_PROOF_AT = len(_MAGIC) + _HEAD.size
_PAYLOAD_AT = _PROOF_AT + 32  # after the HMAC
# Counters this far below a sender's highest are refused as replays. A sender's counter runs
# over all its receivers, so this bounds how late a message may arrive after the sender's
# later ones; the receiver keeps a bit per counter (2 KB per sender).
REPLAY_WINDOW = 1 << 14
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1


class _Sender:
    """This process's id and message counter; a forked child gets its own."""

    def __init__(self) -> None:
        self.id = os.urandom(8)
        self.counter = itertools.count(1)


_sender = _Sender()
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_sender", _Sender()))


class ReplayWindow:
    """The counters seen from each sender: a counter seen before, or more than REPLAY_WINDOW
    below the highest seen, is a replay. A bit per counter below the highest."""

    def __init__(self) -> None:
        self._seen: dict[bytes, tuple[int, int]] = {}  # sender -> (highest counter, bitmap)
        self._lock = threading.Lock()

    def accept(self, sender: bytes, counter: int) -> bool:
        with self._lock:
            highest, bits = self._seen.get(sender, (0, 0))
            if counter > highest:
                shift = counter - highest
                bits = (bits << shift) | 1 if shift < REPLAY_WINDOW else 1
                if bits.bit_length() > 2 * REPLAY_WINDOW:  # forget what fell out of the window
                    bits &= _WINDOW_MASK
                self._seen[sender] = (counter, bits)
                return True
            back = highest - counter
            if back >= REPLAY_WINDOW or bits >> back & 1:
                return False
            self._seen[sender] = (highest, bits | 1 << back)
            return True


class MessageSigner:
    """A drop-in for the ``pickle`` module as Thespian's TCP serializer: ``dumps`` prefixes
    the pickle with the sender's id and counter and an HMAC over all of them; ``loads``
    checks the HMAC and the counter before it unpickles anything.

    Thespian's acknowledgements are two fixed pickled strings; they are recognised by their
    exact bytes (never unpickled) and carry no proof: a forged one can only make a sender
    believe a message was delivered or must be sent again.
    """

    def __init__(self, acks: dict[bytes, Any]) -> None:
        self._acks = acks
        self._replays = ReplayWindow()

    def dumps(self, obj: Any, *args: Any, **kwargs: Any) -> bytes:
        payload = pickle.dumps(obj, *args, **kwargs)
        head = _HEAD.pack(_sender.id, next(_sender.counter))
        return b"".join((_MAGIC, head, _mac(b"msg", head, payload), payload))

    def loads(self, data: bytes) -> Any:
        if data in self._acks:
            return self._acks[data]
        if len(data) < _PAYLOAD_AT or data[: len(_MAGIC)] != _MAGIC:
            raise AuthRejected(f"message without a token proof ({len(data)} bytes)")
        view = memoryview(data)
        head, payload = bytes(view[len(_MAGIC) : _PROOF_AT]), view[_PAYLOAD_AT:]
        if not hmac.compare_digest(bytes(view[_PROOF_AT:_PAYLOAD_AT]), _mac(b"msg", head, payload)):
            raise AuthRejected(f"message with a wrong token proof ({len(data)} bytes)")
        sender, counter = _HEAD.unpack(head)
        if not self._replays.accept(sender, counter):
            raise AuthRejected(f"replayed message (sender {sender.hex()}, counter {counter})")
        try:
            return pickle.loads(payload)
        except Exception as exc:
            # Thespian drops such a message (its sender is never told): say why, e.g. a class
            # this process cannot import (see docs/design.md, "Thespian: message classes must be importable").
            _logger().error(
                "message_undecodable", size=len(data), error_type=type(exc).__name__, error=str(exc)[:500]
            )
            raise


# ---- authenticated connections (data plane, allocation channel) --------------------------

NONCE_SIZE = 16
PROOF_SIZE = 32


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise AuthRejected(f"peer closed the connection during authentication ({got} of {n} bytes)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def accept_peer(sock: socket.socket, channel: str) -> None:
    """Server side of a new connection: challenge the client with a fresh nonce, check its
    proof, then prove the token back (bound to both nonces). No-op with authentication off.

    Raises:
        AuthRejected: the client's proof is missing or wrong (the caller closes and logs).
    """
    if _token is None:
        return
    server_nonce = os.urandom(NONCE_SIZE)
    sock.sendall(server_nonce)
    answer = _recv_exactly(sock, NONCE_SIZE + PROOF_SIZE)
    client_nonce, proof = answer[:NONCE_SIZE], answer[NONCE_SIZE:]
    if not hmac.compare_digest(proof, _mac(b"client", channel.encode(), server_nonce, client_nonce)):
        raise AuthRejected("wrong token proof")
    sock.sendall(_mac(b"server", channel.encode(), server_nonce, client_nonce))


def prove_to_peer(sock: socket.socket, channel: str) -> bytes:
    """Client side: answer the server's challenge; returns the proof the server must send
    back (``check_peer_proof``), which a client may read after sending its request."""
    if _token is None:
        return b""
    server_nonce = _recv_exactly(sock, NONCE_SIZE)
    client_nonce = os.urandom(NONCE_SIZE)
    sock.sendall(client_nonce + _mac(b"client", channel.encode(), server_nonce, client_nonce))
    return _mac(b"server", channel.encode(), server_nonce, client_nonce)


def check_peer_proof(sock: socket.socket, expected: bytes, channel: str) -> None:
    """Read the server's proof of the token and compare it with ``expected``.

    Raises:
        AuthRejected: the server did not prove the token.
    """
    if expected and not hmac.compare_digest(_recv_exactly(sock, len(expected)), expected):
        raise AuthRejected(f"the {channel} server did not prove the cluster token")

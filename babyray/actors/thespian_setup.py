"""Thespian set-up shared by every babyray process that starts or joins an actor system.

Stock Thespian binds every socket to 0.0.0.0; ``bind_to_node_ip`` makes each actor and
admin listen only on the node's own address. ``authenticate_messages`` makes every message
carry a proof of the cluster token, checked before it is unpickled (babyray.auth). Both
must run before the admin is forked, so every actor process inherits them, and before a
driver opens its actor system. Thespian's own log goes to the session.
Stock ``TCPTransport.close`` leaves the transport's idle outgoing connections open; here it
closes them, so a driver's init/shutdown cycles leave no socket behind. Thespian detaches the
admin process it forks from multiprocessing, so nothing waits for its exit: ``started_admins``
lists their pids for the starter to reap. Stock ``_childExited`` (handling one child's exit)
drops every dead child from the child list, yet only the named one is reported: a child that
died at the same moment was never reported, and a stopping actor or admin, which waits for
all its children, then hung until Thespian's 10 s shutdown timeout. Here each dead child it
drops is reported.
"""
from __future__ import annotations

import os
import pickle
from datetime import timedelta
from typing import Any

from thespian.actors import ActorSystem, ChildActorExited
from thespian.system import multiprocCommon, systemBase
from thespian.system.addressManager import CannotPickleAddress
from thespian.system.transport import IPBase, TransmitIntent
from thespian.system.transport import TCPTransport as tcp_transport  # the module: its serializer
from thespian.system.transport.streamBuffer import (
    ReceiveBuffer,
    ackDataErrMsg,
    ackDataErrPacket,
    ackMsg,
    ackPacket,
)
from thespian.system.transport.TCPTransport import TCPIncoming_Common, TCPTransport

from babyray import auth

ADMIN_PORT = "Admin Port"
CONVENTION = "Convention Address.IPv4"
NODE_CAPABILITY = "babyray_node"

_original_init = IPBase.IPActorAddress.__init__


def _init_bound_to_node_ip(self: Any, af: Any, socktype: Any, proto: Any, baseaddr: Any, port: Any,
                           external: Any = False) -> None:
    _original_init(self, af, socktype, proto, baseaddr, port, external)
    node_ip = os.environ.get("THESPIAN_BASE_IPADDR")
    if node_ip and self.bindname[0] in ("", "0.0.0.0"):
        self.bindname = (node_ip, self.bindname[1])


_original_close = TCPTransport.close


def _close_with_idle_sockets(self: Any) -> None:
    for idle in getattr(self, "_openSockets", {}).values():
        idle.close()
    if hasattr(self, "_openSockets"):
        self._openSockets = {}
    _original_close(self)


TCPTransport.close = _close_with_idle_sockets

_original_detach_child = multiprocCommon.detach_child
_admin_pids: list[int] = []


def _detach_child_noting_admins(child: Any) -> None:
    _original_detach_child(child)
    if child.name == "ThespianAdmin":
        _admin_pids.append(child.pid)


multiprocCommon.detach_child = _detach_child_noting_admins


def _child_exited_reporting_others(self: Any, child_address: Any) -> None:
    """Forget the dead children; report those other than ``child_address`` (being handled),
    which no SIGCHLD will report once they are off the list."""
    alive: list[Any] = []
    dead: list[Any] = []
    for child in getattr(self, "_child_procs", []):
        (alive if self._checkChildLiveness(child) else dead).append(child)
    self._child_procs = alive
    for child in dead:
        address = getattr(child, "childRealAddr", child.childAddr)
        if child_address in (address, child.childAddr):
            continue
        try:
            self.transport.scheduleTransmit(None, TransmitIntent(self.transport.myAddress, ChildActorExited(address)))
        except CannotPickleAddress:  # never connected: Thespian's own start-up failure path reports it
            pass


multiprocCommon.MultiProcReplicator._childExited = _child_exited_reporting_others


def shutdown_bounded(system: ActorSystem, seconds: float) -> None:
    """``system.shutdown()``, waiting at most ``seconds`` (not Thespian's fixed 10 s) for the
    admin to confirm that every actor stopped."""
    saved = systemBase.MAX_SYSTEM_SHUTDOWN_DELAY
    systemBase.MAX_SYSTEM_SHUTDOWN_DELAY = timedelta(seconds=seconds)
    try:
        system.shutdown()
    finally:
        systemBase.MAX_SYSTEM_SHUTDOWN_DELAY = saved


def started_admins() -> list[int]:
    """Pids of the admin processes this process forked, oldest first."""
    return list(_admin_pids)


def bind_to_node_ip(node_ip: str, log_dir: str) -> None:
    """Make this process (and the Thespian processes it forks) listen on ``node_ip`` only."""
    os.environ["THESPIAN_BASE_IPADDR"] = node_ip
    os.environ["THESPLOG_FILE"] = os.path.join(log_dir, "thespian.log")
    os.environ.setdefault("THESPLOG_THRESHOLD", "WARNING")
    IPBase.thisSystem.add_local_addr(node_ip)
    IPBase.IPActorAddress.__init__ = _init_bound_to_node_ip


def _unframed(message: bytes) -> bytes:
    return message.split(b">", 1)[1]  # Thespian's frame: b"<length>>" + pickle


_SIGNER = auth.MessageSigner({_unframed(ackMsg): ackPacket, _unframed(ackDataErrMsg): ackDataErrPacket})
_received_data = TCPIncoming_Common.data.fget
_check_ack = TCPTransport._check_XMIT_4_done


def _completed_once(self: Any) -> Any:
    """ReceiveBuffer.completed, deserializing the buffer only once: Thespian looks at a message
    that arrives while it waits for an ack twice, and the second look would be refused as a
    replay of the first."""
    if self._size is None or self._blen != self._size:
        return None
    if getattr(self, "_babyray_message", None) is None:
        self._babyray_message = (self._deserialize(self._buf),)
    return self._babyray_message[0], self._extra


def _peer(sock: Any) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except (OSError, AttributeError):
        return "unknown"


def _verified_data(self: Any) -> Any:
    """A received message, or AuthRejected (logged); Thespian then drops the connection."""
    try:
        return _received_data(self)
    except auth.AuthRejected as exc:
        auth.log_rejected("thespian", _peer(self.socket), str(exc))
        raise


def _verified_ack(self: Any, intent: Any, rcv: Any) -> Any:
    """An unverified reply on a connection we opened: retried like a corrupted ack."""
    try:
        return _check_ack(self, intent, rcv)
    except auth.AuthRejected as exc:
        auth.log_rejected("thespian", _peer(getattr(intent, "socket", None)), str(exc),
                          target=str(intent.targetAddr))
        intent.backoffPause(True)
        intent.stage = self._XMITStepRetry
        return self._nextTransmitStep(intent)


def authenticate_messages(token: str | None) -> None:
    """Sign this process's Thespian messages with ``token`` and refuse any incoming one that
    does not prove it; None: plain pickle, unauthenticated (unsafe)."""
    auth.use_token(token)
    tcp_transport.serializer = _SIGNER if token else pickle
    ReceiveBuffer.completed = _completed_once
    TCPIncoming_Common.data = property(_verified_data)
    TCPTransport._check_XMIT_4_done = _verified_ack


def log_defs(log_dir: str) -> dict:
    """Logging config for Thespian's admin: actors' stdlib logging lands in the session."""
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain",
                              "filename": os.path.join(log_dir, "actors.log")}},
        "root": {"handlers": ["file"], "level": "WARNING"},
    }


def capabilities(node_ip: str, port: int, node_id: str, head: str | None = None) -> dict:
    caps = {ADMIN_PORT: port, NODE_CAPABILITY: node_id}
    if head:
        caps[CONVENTION] = head
    return caps


"""Every change babyray makes to Thespian's internals, and every read of them, in one place.

The patches were written against Thespian 4.0.1 (``TESTED_VERSION``). Each replacement below
says what stock Thespian does, why babyray changes it and where docs/design.md explains it;
``PATCHES`` lists where each one goes. ``apply()`` installs them all in this process, once.
``babyray.actors.thespian_setup`` calls it when imported, and every process that starts or
joins an actor system imports it before its admin is forked; the admin and every actor
forked from it (Thespian forks by default) inherit the patched classes. A process whose
installed Thespian is another version logs ``thespian_version_untested`` and runs on.

Besides the patches: ``add_local_address``, ``listen_each``, ``query_admin``,
``shutdown_bounded``, ``started_admins`` and ``child_process`` reach into Thespian objects that have no public
interface, and ``use_stock_selector`` takes one patch back in the object store's process.
See docs/design.md, "Thespian: the patches module".
"""

from __future__ import annotations

import copyreg
import enum
import errno
import logging
import math
import os
import pickle
import select
import selectors
import socket
import time
from datetime import timedelta
from importlib import metadata
from typing import Any, Callable

from thespian.actors import ActorSystem, ChildActorExited, ExternalContext
from thespian.system import isInternalActorSystemMessage, multiprocCommon, systemBase, utilis
from thespian.system.addressManager import CannotPickleAddress
from thespian.system.messages.admin import QueryAck, QueryExists
from thespian.system.transport import IPBase, ReceiveEnvelope, SendStatus, TransmitIntent
from thespian.system.transport import TCPTransport as tcp_transport  # the module: its serializer
from thespian.system.transport.streamBuffer import (
    ReceiveBuffer,
    ackDataErrMsg,
    ackDataErrPacket,
    ackMsg,
    ackPacket,
)
from thespian.system.transport.TCPTransport import TCPIncoming_Common, TCPTransport

from babyray import auth, log, serialization
from babyray.actors import admin_lifetime, admin_output
from babyray.api import metric_registry

TESTED_VERSION = "4.0.1"

_stock_address_init = IPBase.IPActorAddress.__init__
_stock_close = TCPTransport.close
_stock_detach_child = multiprocCommon.detach_child
_stock_start_admin = multiprocCommon.startAdmin
_stock_received_data = TCPIncoming_Common.data.fget
_stock_check_ack = TCPTransport._check_XMIT_4_done
_stock_handle_readable = TCPTransport._handleReadableIncoming
_stock_send_data = TCPTransport._next_XMIT_2
_stock_identify_intent = TransmitIntent.identify
_stock_identify_envelope = ReceiveEnvelope.identify
_admin_pids: list[int] = []
_applied = False


# ---- the patches -------------------------------------------------------------------------


def init_address_on_node_ip(
    self: Any, af: Any, socktype: Any, proto: Any, baseaddr: Any, port: Any, external: Any = False
) -> None:
    """``IPActorAddress.__init__``, binding to ``THESPIAN_BASE_IPADDR`` when it is set.

    Stock: an address without a host binds to ``""`` or ``0.0.0.0``, every interface. babyray:
    a node listens on its own address only. See docs/design.md, "Thespian: sockets bind to
    every interface".
    """
    _stock_address_init(self, af, socktype, proto, baseaddr, port, external)
    node_ip = os.environ.get("THESPIAN_BASE_IPADDR")
    if node_ip and self.bindname[0] in ("", "0.0.0.0"):
        self.bindname = (node_ip, self.bindname[1])


def close_with_idle_sockets(self: Any) -> None:
    """``TCPTransport.close``, closing the idle outgoing connections too.

    Stock: they stay open, so each init/shutdown cycle of a driver left sockets behind.
    See docs/design.md, "Thespian: the patches module".
    """
    for idle in getattr(self, "_openSockets", {}).values():
        idle.close()
    if hasattr(self, "_openSockets"):
        self._openSockets = {}
    _stock_close(self)


def detach_child_noting_admin(child: Any) -> None:
    """``multiprocCommon.detach_child``, noting the pid of a forked admin (``started_admins``).

    Stock: the admin's process is detached from multiprocessing and nothing waits for its
    exit; babyray's starter ends its process group and reaps it. See docs/design.md,
    "Thespian: an admin outlives its starter".
    """
    _stock_detach_child(child)
    if child.name == "ThespianAdmin":
        _admin_pids.append(child.pid)


def start_admin_tied(admin_class: Any, *args: Any) -> None:
    """``multiprocCommon.startAdmin`` (run in the child forked to start an admin): the admin
    first points its output where its starter asked (``admin_output``) and forgets the custom
    serializers its starter registered (the workers it forks register their own, as Ray's do)
    and the metric values it recorded (its workers would report them again as theirs),
    and once made, in its own process, it starts watching its starter if the starter tied it
    (``admin_lifetime.tie_next_admin``, ``admin_lifetime.watch_starter``).

    Stock: nothing ends an admin whose starter died. See docs/design.md, "Thespian: an admin
    outlives its starter".
    """

    def make_admin(*admin_args: Any) -> Any:
        admin_output.redirect_in_admin()
        serialization.forget_custom_serializers()
        metric_registry.REGISTRY.clear()
        admin = admin_class(*admin_args)
        admin_lifetime.watch_starter()
        return admin

    make_admin.__name__ = admin_class.__name__  # Thespian names the admin's process after it
    _stock_start_admin(make_admin, *args)


def child_exited_reporting_others(self: Any, child_address: Any) -> None:
    """``MultiProcReplicator._childExited``, reporting each other dead child it forgets.

    Stock: handling one child's exit drops every dead child from the child list, but only the
    handled one is reported; one that died at the same moment never was (no later SIGCHLD
    finds it off the list), and an actor or admin stopping, which waits for all its children,
    hung until the 10 s shutdown timeout. See docs/design.md, "Thespian: the patches module".
    """
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
            self.transport.scheduleTransmit(
                None, TransmitIntent(self.transport.myAddress, ChildActorExited(address))
            )
        except CannotPickleAddress:  # never connected: Thespian's own start-up failure path reports it
            pass


def _unframed(message: bytes) -> bytes:
    return message.split(b">", 1)[1]  # Thespian's frame: b"<length>>" + pickle


MESSAGE_SIGNER = auth.MessageSigner(
    {_unframed(ackMsg): ackPacket, _unframed(ackDataErrMsg): ackDataErrPacket}
)


class TokenSerializer:
    """Thespian's TCP serializer (the ``pickle`` module, stock): ``MESSAGE_SIGNER`` while this
    process holds a cluster token (``auth.use_token``), plain pickle without one.

    babyray: every message proves the token and is checked before it is unpickled. See
    docs/design.md, "Authentication".
    """

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> bytes:
        codec: Any = MESSAGE_SIGNER if auth.current_token() is not None else pickle
        return codec.dumps(obj, *args, **kwargs)

    @staticmethod
    def loads(data: bytes) -> Any:
        codec: Any = MESSAGE_SIGNER if auth.current_token() is not None else pickle
        return codec.loads(data)


def completed_deserializing_once(self: Any) -> Any:
    """``ReceiveBuffer.completed``, deserializing the buffer once however often it is asked.

    Stock: each call deserializes again, and a message arriving while Thespian waits for an
    ack is looked at twice; the second look would be refused as a replay of the first. See
    docs/design.md, "Authentication".
    """
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


def received_data_verified(self: Any) -> Any:
    """``TCPIncoming_Common.data`` (a property): a received message, or ``AuthRejected``,
    logged as ``auth_rejected`` with the peer's address; Thespian then refuses the message
    and closes the connection.

    Stock: a message that does not deserialize shows only in Thespian's own log. See
    docs/design.md, "Authentication".
    """
    try:
        return _stock_received_data(self)
    except auth.AuthRejected as exc:
        auth.log_rejected("thespian", _peer(self.socket), str(exc))
        raise


def ack_verified(self: Any, intent: Any, rcv: Any) -> Any:
    """``TCPTransport._check_XMIT_4_done``: a reply that does not verify, on a connection this
    process opened, is logged and retried like a corrupted ack; a reply read in part is read
    on at once while the socket has more (``_readable_now``).

    Stock: an error while reading the ack escapes the transmit step. See docs/design.md,
    "Authentication". Stock: the first read takes 20 bytes (the length is not known before),
    an ack is 21, and its last byte waited for another turn of the transport's loop. See
    docs/design.md, "Thespian: the patches module".
    """
    try:
        result = _stock_check_ack(self, intent, rcv)
    except auth.AuthRejected as exc:
        auth.log_rejected(
            "thespian", _peer(getattr(intent, "socket", None)), str(exc), target=str(intent.targetAddr)
        )
        intent.backoffPause(True)
        intent.stage = self._XMITStepRetry
        return self._nextTransmitStep(intent)
    ackbuf = getattr(intent, "ackbuf", None)
    if (
        result is True
        and ackbuf is not None
        and not ackbuf.is_empty()
        and not ackbuf.isDone()
        and _readable_now(getattr(intent, "socket", None))
    ):
        return self._next_XMIT_4(intent)  # reads what the reply still lacks, and checks it again
    return result


def read_whole_message(self: Any, inc: Any, has_exclusive_flag: bool = False) -> Any:
    """``TCPTransport._handleReadableIncoming``, reading on at once while a message is
    incomplete and its socket has more.

    Stock: the first read of a message takes 20 bytes (its length is not known before), and
    the rest waited for the next turn of the transport's loop, though the sender wrote it all
    at once: two turns per message received. Each read still asks for no more than the message
    lacks, so nothing of a next message is taken. See docs/design.md, "Thespian: the patches
    module".
    """
    result = _stock_handle_readable(self, inc, has_exclusive_flag)
    while (
        result is inc
        and inc.socket is not None
        and not inc._rData.is_empty()
        and not inc.receivedAllData()
        and _readable_now(inc.socket)
    ):
        result = _stock_handle_readable(self, inc, has_exclusive_flag)
    return result


def send_then_await_ack(self: Any, intent: Any) -> Any:
    """``TCPTransport._next_XMIT_2`` (send a message's bytes), going on at once to await the
    ack once all are sent.

    Stock: the step after the last byte is sent does nothing but set up the ack's buffer
    (a socket shutdown it once did is commented out), yet it waited for the socket to be
    writable, another turn of the transport's loop per message sent. See docs/design.md,
    "Thespian: the patches module".
    """
    result = _stock_send_data(self, intent)
    if result is True and intent.stage == self._XMITStepShutdownWrite:
        return self._nextTransmitStep(intent)
    return result


def _thespian_debug_logged() -> bool:
    """Whether Thespian's own log (``thesplog``) writes DEBUG lines (``THESPLOG_THRESHOLD``)."""
    return bool(utilis._thesplog_control_settings[0] <= logging.DEBUG)


def identify_intent_briefly(self: Any) -> str:
    """``TransmitIntent.identify``: unless Thespian's own log writes DEBUG lines, the target
    and the message's type only.

    Stock: every send builds the full description (the message's text, its timers) for two
    DEBUG lines Thespian's log drops by default, ~40 us per message here. The full one is
    still what ``str()`` gives. See docs/design.md, "Thespian: the patches module".
    """
    if _thespian_debug_logged():
        return str(_stock_identify_intent(self))
    return f"TransmitIntent({self.targetAddr}, {type(self.message).__name__}, result={self.result})"


def describe_intent_fully(self: Any) -> str:
    """``TransmitIntent.__str__``, as stock: the full description (stock ``identify``)."""
    return f"************* {_stock_identify_intent(self)}"


def identify_envelope_briefly(self: Any) -> str:
    """``ReceiveEnvelope.identify``: unless Thespian's own log writes DEBUG lines, the sender
    and the message's type only (stock: the message's text, for a DEBUG line per message
    received). ``str()`` still gives the full description."""
    if _thespian_debug_logged():
        return str(_stock_identify_envelope(self))
    return f"ReceiveEnvelope(from: {self.sender}, {type(self.message).__name__})"


def reduce_tcp_address(address: Any) -> tuple:
    """How a ``TCPv4ActorAddress`` pickles (``copyreg``'s entry for the class, not its subclasses).

    Stock: ``IPActorAddress.__getstate__`` copies the address's ``__dict__``, whose socket family
    and type are enums, each pickled and unpickled through Python calls; the addresses in an
    actor call's message (its sender's, the caller's inside the spec) were half of its
    pickling. babyray: the class is always TCP over IPv4, so its two (host, port) pairs are all
    that travels, and ``tcp_address`` builds it again.
    """
    return tcp_address, (address.sockname, address.bindname)


def tcp_address(sockname: tuple, bindname: tuple) -> Any:
    """The ``TCPv4ActorAddress`` that ``reduce_tcp_address`` pickled."""
    address = object.__new__(IPBase.TCPv4ActorAddress)
    address.__dict__.update(
        af=socket.AF_INET,
        socktype=socket.SOCK_STREAM,
        proto=socket.IPPROTO_TCP,
        sockname=sockname,
        bindname=bindname,
    )
    return address


def _readable_now(sock: Any) -> bool:
    """Whether ``sock`` has data to read (or an error or hang-up to report) right now."""
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # closed under us: the stock read reports it
        return False


class _Ready:
    """What ``PollSelector.select`` returns per ready descriptor: the key Thespian reads ``.fd`` of."""

    __slots__ = ("fd", "events")

    def __init__(self, fd: int, events: int) -> None:
        self.fd = fd
        self.events = events


class PollSelector:
    """The selector ``TCPTransport._runWithExpiry`` makes on every turn of its loop: one
    ``poll()`` over the descriptors registered, with no per-descriptor system call.

    Stock: ``selectors.DefaultSelector`` (epoll) is created, filled with one ``epoll_ctl``
    per descriptor and closed again on every turn, several turns per message; that and the
    selector's bookkeeping were a fifth of a worker's CPU per actor call. A descriptor closed
    under the loop raises ``EBADF`` from ``select`` as epoll's registration did, so Thespian's
    search for the bad watched descriptor still runs. See docs/design.md, "Thespian: the
    patches module".
    """

    __slots__ = ("_poll", "_masks")

    def __init__(self) -> None:
        self._poll = select.poll()
        self._masks: dict[int, int] = {}

    def register(self, fd: int, events: int) -> None:
        mask = self._masks.get(fd, 0)
        if events & selectors.EVENT_READ:
            mask |= select.POLLIN
        if events & selectors.EVENT_WRITE:
            mask |= select.POLLOUT
        self._masks[fd] = mask
        self._poll.register(fd, mask)

    def select(self, timeout: float | None = None) -> list[tuple[_Ready, int]]:
        millis = None if timeout is None else max(0, math.ceil(timeout * 1000))
        ready = []
        for fd, revents in self._poll.poll(millis):
            if revents & select.POLLNVAL:
                raise OSError(errno.EBADF, f"descriptor {fd} is not open")
            mask = self._masks.get(fd, 0)
            wanted = (selectors.EVENT_READ if mask & select.POLLIN else 0) | (
                selectors.EVENT_WRITE if mask & select.POLLOUT else 0
            )
            # As the stdlib's poll selector: an error or hang-up counts as readable and writable.
            events = (selectors.EVENT_WRITE if revents & ~select.POLLIN else 0) | (
                selectors.EVENT_READ if revents & ~select.POLLOUT else 0
            )
            if events & wanted:
                ready.append((_Ready(fd, wanted), events & wanted))
        return ready

    def close(self) -> None:
        self._masks.clear()


class PollSelectors:
    """The ``selectors`` module as ``TCPTransport`` sees it: its default selector is ``PollSelector``."""

    DefaultSelector = PollSelector
    EVENT_READ = selectors.EVENT_READ
    EVENT_WRITE = selectors.EVENT_WRITE


# Where each patch goes: (module or class, attribute, babyray's replacement).
PATCHES: tuple[tuple[Any, str, Any], ...] = (
    (IPBase.IPActorAddress, "__init__", init_address_on_node_ip),
    (TCPTransport, "close", close_with_idle_sockets),
    (multiprocCommon, "detach_child", detach_child_noting_admin),
    (multiprocCommon, "startAdmin", start_admin_tied),
    (multiprocCommon.MultiProcReplicator, "_childExited", child_exited_reporting_others),
    (tcp_transport, "serializer", TokenSerializer),
    (ReceiveBuffer, "completed", completed_deserializing_once),
    (TCPIncoming_Common, "data", property(received_data_verified)),
    (TCPTransport, "_check_XMIT_4_done", ack_verified),
    (TCPTransport, "_handleReadableIncoming", read_whole_message),
    (TCPTransport, "_next_XMIT_2", send_then_await_ack),
    (TransmitIntent, "identify", identify_intent_briefly),
    (TransmitIntent, "__str__", describe_intent_fully),
    (ReceiveEnvelope, "identify", identify_envelope_briefly),
    (ReceiveEnvelope, "__str__", _stock_identify_envelope),
    (tcp_transport, "selectors", PollSelectors),
)


def apply() -> None:
    """Install every patch of ``PATCHES``, and ``reduce_tcp_address`` as the pickling of
    ``TCPv4ActorAddress``, in this process; later calls do nothing."""
    global _applied
    if _applied:
        return
    check_version()
    for owner, attribute, replacement in PATCHES:
        setattr(owner, attribute, replacement)
    copyreg.pickle(IPBase.TCPv4ActorAddress, reduce_tcp_address)
    _applied = True


def check_version() -> None:
    """Log ``thespian_version_untested`` if the installed Thespian is not ``TESTED_VERSION``."""
    try:
        version = metadata.version("thespian")
    except metadata.PackageNotFoundError:
        version = "unknown"
    if version != TESTED_VERSION:
        log.get_logger("thespian_patches").warning(
            "thespian_version_untested", version=version, tested=TESTED_VERSION
        )


# ---- reads and scoped changes of Thespian's internals ------------------------------------


def use_stock_selector() -> None:
    """Put Thespian's own selector back in this process (the object store's).

    ``PollSelector`` takes 5-10 % off round trips, but in the object store's process, whose
    allocation-channel threads answer puts beside the actor's loop, it cost puts of 1 MB ~30 %:
    1,000 puts ran at 1,033-1,214 /s with the stock selector in the store alone against
    581-772 /s with ``PollSelector`` (runs alternated on one machine). Why is not known. See
    docs/design.md, "Thespian: the patches module".
    """
    tcp_transport.selectors = selectors


def add_local_address(ip: str) -> None:
    """Count ``ip`` among this host's addresses in Thespian's table of them.

    Stock Thespian fills the table when imported, with ``THESPIAN_BASE_IPADDR`` if set then;
    babyray sets it later (``thespian_setup.bind_to_node_ip``). See docs/design.md, "Thespian:
    sockets bind to every interface".
    """
    IPBase.thisSystem.add_local_addr(ip)


def listen_each(context: Any, seconds: float, handler: Callable[[Any], bool]) -> None:
    """``context.listen()`` (an external context of ``system.private()``) message after
    message for at most ``seconds``, without leaving Thespian's transport loop in between:
    ``handler`` gets each message for the caller (Thespian's internal ones are left out) and
    returns whether to go on listening.

    Stock ``listen`` returns after each message, and every call sets the loop up again; a
    driver's listener that hands a result to a thread waiting in ``get()`` held the GIL
    through that set-up before the waiting thread could run. See docs/design.md, "Thespian:
    the patches module".
    """

    def on_envelope(envelope: Any) -> bool:
        message = getattr(envelope, "message", None)
        if message is None or isInternalActorSystemMessage(message):
            return True
        return handler(message)

    context._systemBase._run_transport(seconds, incomingHandler=on_envelope)


class AdminAnswer(enum.Enum):
    """How the Thespian admin at an address met ``query_admin``'s question."""

    ANSWERED = "answered"  # it took the message and answered: it verified this process's token
    REFUSED = "refused"  # it could not decode the message: the token proof did not verify there
    SILENT = "silent"  # no answer in time: nothing listening, not a Thespian admin, or busy


def query_admin(system: ActorSystem, address: str, seconds: float) -> AdminAnswer:
    """Ask the Thespian admin at ``address`` ("host:port") whether it exists, as Thespian itself
    does (``QueryExists``), waiting at most ``seconds``: from a private context of ``system``,
    or from ``system`` itself if it is one (a thread's own, as the driver's head watch has).

    A receiver answers a message it cannot decode with its "data error" acknowledgement, which
    Thespian's transmit reports as ``BadPacket``: with babyray's signed messages, the proof of
    the token did not verify there.
    """
    own = isinstance(system, ExternalContext)
    context = system if own else system.private().__enter__()
    base = context._systemBase
    answered = False

    def on_envelope(envelope: Any) -> bool:
        nonlocal answered
        answered = answered or isinstance(getattr(envelope, "message", None), QueryAck)
        return not answered

    try:
        watch = base._tx_to_actor(tcp_transport.TCPTransport.getAddressFromString(address), QueryExists())
        deadline = time.monotonic() + seconds
        while not (answered or watch.failed) and time.monotonic() < deadline:
            base._run_transport(max(0.0, deadline - time.monotonic()), incomingHandler=on_envelope)
        if answered:
            return AdminAnswer.ANSWERED
        if isinstance(watch.failure, SendStatus.BadPacketError):
            return AdminAnswer.REFUSED
        return AdminAnswer.SILENT
    finally:
        if not own:
            context.exit_clone()


def shutdown_bounded(system: ActorSystem, seconds: float) -> None:
    """``system.shutdown()``, waiting at most ``seconds`` (not Thespian's fixed 10 s) for the
    admin to confirm that every actor stopped. See docs/design.md, "Thespian: an admin
    outlives its starter"."""
    saved = systemBase.MAX_SYSTEM_SHUTDOWN_DELAY
    systemBase.MAX_SYSTEM_SHUTDOWN_DELAY = timedelta(seconds=seconds)
    try:
        system.shutdown()
    finally:
        systemBase.MAX_SYSTEM_SHUTDOWN_DELAY = saved


def started_admins() -> list[int]:
    """Pids of the admin processes this process forked, oldest first (``detach_child_noting_admin``)."""
    return list(_admin_pids)


def child_process(actor: Any, address: Any) -> Any:
    """The ``multiprocessing.Process`` of a child ``actor`` created at ``address`` (None if not
    found): Thespian keeps it, and reaps through it, in the child list of the actor's manager."""
    for child in getattr(actor._myRef, "_child_procs", ()):
        if child.childAddr == address:
            return child.childProc
    return None

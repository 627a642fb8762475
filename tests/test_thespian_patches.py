"""babyray's patches of Thespian: installed by apply(), twice as once, and present in workers."""

from __future__ import annotations

import copyreg
import errno
import logging
import multiprocessing
import os
import pickle
import selectors
import socket
import time
from typing import Any

import pytest
from structlog.testing import capture_logs
from thespian.actors import Actor, ActorAddress, ActorSystem
from thespian.system import multiprocCommon, utilis
from thespian.system.transport import IPBase, ReceiveEnvelope, TransmitIntent
from thespian.system.transport import TCPTransport as tcp_transport
from thespian.system.transport.IPBase import TCPv4ActorAddress
from thespian.system.transport.streamBuffer import ReceiveBuffer
from thespian.system.transport.TCPTransport import TCPIncoming_Common, TCPTransport

import babyray as ray
from babyray import auth, thespian_patches
from babyray.cluster import free_port

P = thespian_patches
EXPECTED = [  # (owner, attribute, the babyray replacement apply() must leave there)
    (IPBase.IPActorAddress, "__init__", P.init_address_on_node_ip),
    (TCPTransport, "close", P.close_with_idle_sockets),
    (multiprocCommon, "detach_child", P.detach_child_noting_admin),
    (multiprocCommon, "startAdmin", P.start_admin_tied),
    (multiprocCommon.MultiProcReplicator, "_childExited", P.child_exited_reporting_others),
    (tcp_transport, "serializer", P.TokenSerializer),
    (ReceiveBuffer, "completed", P.completed_deserializing_once),
    (TCPIncoming_Common, "data", P.received_data_verified),  # the property's getter
    (TCPTransport, "_check_XMIT_4_done", P.ack_verified),
    (TCPTransport, "_handleReadableIncoming", P.read_whole_message),
    (TCPTransport, "_next_XMIT_2", P.send_then_await_ack),
    (TransmitIntent, "identify", P.identify_intent_briefly),
    (TransmitIntent, "__str__", P.describe_intent_fully),
    (ReceiveEnvelope, "identify", P.identify_envelope_briefly),
    (ReceiveEnvelope, "__str__", P._stock_identify_envelope),
    (tcp_transport, "selectors", P.PollSelectors),
]


def _installed(owner: object, attribute: str) -> object:
    value = vars(owner)[attribute]
    return value.fget if isinstance(value, property) else value


@pytest.fixture
def token():
    before = auth.current_token()
    auth.use_token(auth.generate_token())
    yield auth.current_token()
    auth.use_token(before)


def test_after_apply_each_patched_attribute_is_babyrays():
    thespian_patches.apply()
    for owner, attribute, replacement in EXPECTED:
        assert _installed(owner, attribute) is replacement, f"{owner.__name__}.{attribute}"
    assert [(owner, attribute) for owner, attribute, _ in thespian_patches.PATCHES] == [
        (owner, attribute) for owner, attribute, _ in EXPECTED
    ]
    assert copyreg.dispatch_table[TCPv4ActorAddress] is P.reduce_tcp_address


def test_addresses_pickle_to_equal_ones_and_subclasses_keep_their_routing():
    thespian_patches.apply()
    address = TCPv4ActorAddress("127.0.0.1", 4123)
    str(address)  # caches its text form, which must not travel
    copy = pickle.loads(pickle.dumps(address))
    assert type(copy) is TCPv4ActorAddress and copy == address
    assert (copy.af, copy.socktype, copy.proto) == (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    assert (copy.sockname, copy.bindname) == (address.sockname, address.bindname)
    assert "_str_form" not in vars(copy) and str(copy) == str(address)
    wrapped = ActorAddress(address)
    assert pickle.loads(pickle.dumps(wrapped)) == wrapped
    admin = ActorAddress(TCPv4ActorAddress("127.0.0.1", 4124))
    routed = IPBase.RoutedTCPv4ActorAddress("127.0.0.1", 4125, admin, txOnly=True)
    routed_copy = pickle.loads(pickle.dumps(routed))  # a subclass pickles as stock Thespian does
    assert type(routed_copy) is IPBase.RoutedTCPv4ActorAddress
    assert routed_copy.routing == [None, admin] and routed_copy == routed


def test_a_second_apply_changes_nothing_and_wraps_nothing_twice(monkeypatch, token):
    thespian_patches.apply()
    before = {(owner, attribute): vars(owner)[attribute] for owner, attribute, _ in EXPECTED}
    thespian_patches.apply()
    assert {(owner, attribute): vars(owner)[attribute] for owner, attribute, _ in EXPECTED} == before
    # each patch still runs Thespian's own code exactly once
    admin = multiprocessing.get_context("fork").Process(target=int, name="ThespianAdmin")
    admin.start()
    known = len(thespian_patches.started_admins())
    multiprocCommon.detach_child(admin)
    admin.join(10)
    assert thespian_patches.started_admins()[known:] == [admin.pid]
    monkeypatch.setenv("THESPIAN_BASE_IPADDR", "127.0.0.7")
    assert TCPv4ActorAddress("0.0.0.0", 4000).bindname == ("127.0.0.7", 4000)
    signed = tcp_transport.serializer.dumps(("address", {"payload": b"x" * 100}))
    assert tcp_transport.serializer.loads(signed) == ("address", {"payload": b"x" * 100})


def test_the_transport_selector_reports_what_epoll_did_and_refuses_a_closed_descriptor():
    selector = P.PollSelector()
    read_end, write_end = os.pipe()
    left, right = socket.socketpair()
    try:
        selector.register(read_end, selectors.EVENT_READ)
        selector.register(left.fileno(), selectors.EVENT_WRITE)
        assert [(key.fd, events) for key, events in selector.select(0)] == [
            (left.fileno(), selectors.EVENT_WRITE)
        ]
        os.write(write_end, b"x")
        assert sorted((key.fd, events) for key, events in selector.select(1.0)) == sorted(
            [(read_end, selectors.EVENT_READ), (left.fileno(), selectors.EVENT_WRITE)]
        )
        os.close(write_end)  # a hang-up wakes a reader, as in every stdlib selector
        os.read(read_end, 1)
        assert (read_end, selectors.EVENT_READ) in [(k.fd, e) for k, e in selector.select(0)]
        selector.close()
        idle = P.PollSelector()
        idle.register(read_end, selectors.EVENT_READ)
        os.close(read_end)
        with pytest.raises(OSError) as closed:
            idle.select(0)
        assert closed.value.errno == errno.EBADF
    finally:
        left.close()
        right.close()


def test_intents_and_envelopes_are_described_briefly_unless_thespian_logs_debug_lines():
    thespian_patches.apply()
    target = TCPv4ActorAddress("127.0.0.1", 4000)
    intent, envelope = TransmitIntent(target, "the-message-text"), ReceiveEnvelope(target, "the-message-text")
    assert "the-message-text" not in intent.identify() and "str" in intent.identify()
    assert "the-message-text" not in envelope.identify() and "str" in envelope.identify()
    assert "the-message-text" in str(intent) and "the-message-text" in str(envelope)
    saved = utilis._thesplog_control_settings
    utilis.thesplog_control(logging.DEBUG, False, 0)
    try:
        assert "the-message-text" in intent.identify() and "the-message-text" in envelope.identify()
    finally:
        utilis._thesplog_control_settings = saved


_ECHO_TURNS = [0]  # in the echo's process: turns of its transport's loop since ("count_turns",)


class TurnCountingEcho(Actor):
    """Sends every ("ping", i) back; ("turns",): how many turns its transport's loop made."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == ("turns",):
            self.send(sender, _ECHO_TURNS[0])
        elif isinstance(msg, tuple) and msg[:1] == ("ping",):
            self.send(sender, msg)
        elif isinstance(msg, tuple) and msg[:1] == ("burst",):
            for i in range(msg[1]):
                self.send(sender, ("item", i))
        elif msg == ("count_turns",):
            stock_select = P.PollSelector.select

            def counted(selector: Any, timeout: Any = None) -> Any:
                _ECHO_TURNS[0] += 1
                return stock_select(selector, timeout)

            # In the echo's process only.
            P.PollSelector.select = counted  # type: ignore[method-assign,assignment]
            self.send(sender, "counting")


def test_a_message_and_its_ack_each_take_one_turn_of_the_loop():
    """Stock Thespian read a message's first 20 bytes in one turn and the rest in the next, an
    ack's last byte in another, and waited a turn for a writable socket after sending."""
    system = ActorSystem("multiprocTCPBase", {"Admin Port": free_port()}, transientUnique=True)
    try:
        echo = system.createActor(TurnCountingEcho)
        assert system.ask(echo, ("ping", 0), 10) == ("ping", 0)  # connections open
        assert system.ask(echo, ("count_turns",), 10) == "counting"
        round_trips = 50
        for i in range(round_trips):
            assert system.ask(echo, ("ping", i), 10) == ("ping", i)
        turns = system.ask(echo, ("turns",), 10)
        # Per round trip: the ping arrives (one turn, its ack sent at once), the reply is sent
        # and its ack arrives (one turn). Stock Thespian took five.
        assert turns <= 2.5 * round_trips + 5, turns
    finally:
        system.shutdown()


def test_listen_each_hands_over_messages_until_the_handler_says_stop():
    system = ActorSystem("multiprocTCPBase", {"Admin Port": free_port()}, transientUnique=True)
    try:
        echo = system.createActor(TurnCountingEcho)
        with system.private() as context:
            got: list[Any] = []

            def take(message: Any) -> bool:
                got.append(message)
                return len(got) < 3

            context.tell(echo, ("burst", 5))
            started = time.monotonic()
            thespian_patches.listen_each(context, 30, take)
            assert got == [("item", 0), ("item", 1), ("item", 2)]
            assert time.monotonic() - started < 20  # it returned when told, not at its limit
            thespian_patches.listen_each(context, 30, take)  # the rest are still there
            assert got[3:] == [("item", 3)]
            thespian_patches.listen_each(context, 30, take)
            assert got[4:] == [("item", 4)]
            idle = time.monotonic()
            thespian_patches.listen_each(context, 0.3, take)  # nothing left: back after 0.3 s
            assert len(got) == 5 and 0.25 < time.monotonic() - idle < 20
    finally:
        system.shutdown()


def test_the_object_store_process_takes_the_selector_patch_back():
    thespian_patches.apply()
    try:
        thespian_patches.use_stock_selector()
        assert tcp_transport.selectors is selectors
    finally:
        tcp_transport.selectors = P.PollSelectors
    assert _installed(tcp_transport, "selectors") is P.PollSelectors


def test_sockets_bind_to_every_interface_without_a_node_ip(monkeypatch):
    thespian_patches.apply()
    monkeypatch.delenv("THESPIAN_BASE_IPADDR", raising=False)
    assert TCPv4ActorAddress("0.0.0.0", 4000).bindname == ("0.0.0.0", 4000)


def test_messages_are_signed_with_a_token_and_plain_pickle_without(token):
    thespian_patches.apply()
    serializer = tcp_transport.serializer
    signed = serializer.dumps({"task": 1})
    assert signed != pickle.dumps({"task": 1}) and serializer.loads(signed) == {"task": 1}
    with pytest.raises(auth.AuthRejected):
        serializer.loads(pickle.dumps({"task": 1}))
    auth.use_token(None)
    assert serializer.loads(serializer.dumps({"task": 1})) == {"task": 1}
    assert serializer.dumps({"task": 1}) == pickle.dumps({"task": 1})


def test_another_thespian_version_is_logged_by_name(monkeypatch):
    monkeypatch.setattr(thespian_patches.metadata, "version", lambda name: "4.0.1")
    with capture_logs() as events:
        thespian_patches.check_version()
    assert not [e for e in events if e["event"] == "thespian_version_untested"]
    monkeypatch.setattr(thespian_patches.metadata, "version", lambda name: "4.1.0")
    with capture_logs() as events:
        thespian_patches.check_version()
    assert [
        (e["log_level"], e["version"], e["tested"])
        for e in events
        if e["event"] == "thespian_version_untested"
    ] == [("warning", "4.1.0", "4.0.1")]


@ray.remote
def _patches_in_this_process() -> list[bool]:
    from babyray import thespian_patches

    return [
        vars(owner)[attribute] is replacement for owner, attribute, replacement in thespian_patches.PATCHES
    ] + [copyreg.dispatch_table.get(TCPv4ActorAddress) is thespian_patches.reduce_tcp_address]


def test_worker_processes_forked_by_the_cluster_have_the_patches(cluster):
    flags = ray.get(_patches_in_this_process.remote(), timeout=60)
    assert flags == [True] * (len(EXPECTED) + 1)

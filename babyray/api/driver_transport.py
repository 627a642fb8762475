"""How a driver (a process outside the actor system) talks to babyray's actors.

Two private Thespian contexts (see docs/design.md, "Thespian: tell and ask from outside an
actor"): a listener thread owns the inbox context and hands every message to the core; a
sender thread owns the outgoing context and sends what user threads queued, coalesced into
one Batch per destination while it was busy. So ``.remote()`` never waits on the network,
and many threads may call the API at once.

A joined driver's requests to the head's parts (messages with a ``reply_to``) are kept
until their reply arrives: when the head restarts, ``retarget`` sends them again to the new
parts and redirects whatever is still addressed to the old ones, and ``register_again``
introduces the inbox to the new GCS.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

from thespian.actors import ActorSystem

from babyray import log, thespian_patches
from babyray.actors.batching import Outbox, address_key, unbatch
from babyray.ids import JobID, WorkerID
from babyray.protocol import cluster as cm

LISTEN_TIMEOUT = 0.2


class DriverTransport:
    def __init__(self, system: ActorSystem) -> None:
        self._inbox_ctx = system.private().__enter__()
        self._send_ctx = system.private().__enter__()
        self._outbox = Outbox()
        # Wakes the sender: a C-level queue, so a KeyboardInterrupt landing in send() (Ctrl-C
        # while a finalizer sends) cannot leave it half-notified, as it could a Condition.
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._running = True
        self._handler: Callable[[Any], None] | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._head_parts: set[Any] = set()  # address keys of the head's parts
        self._unanswered: dict[str, tuple[Any, Any]] = {}  # req_id -> (dest, request) to the head
        self._redirects: dict[Any, Any] = {}  # address key of an old head part -> its successor
        self._inbox_tells: list[tuple[Any, Any]] = []  # sent by the listener from the inbox context
        self._registrations: dict[str, Future] = {}
        self.log = log.get_logger("driver_transport")

    def watch_head(self, parts: list[Any]) -> None:
        """Keep the requests sent to these addresses (the head's parts) until answered."""
        with self._lock:
            self._head_parts = {address_key(part) for part in parts}

    def register(self, gcs: Any, pid: int, worker_id: WorkerID, timeout: float) -> cm.DriverRegistered:
        """Introduce the inbox of driver ``worker_id`` to the GCS; the reply carries the inbox's address."""
        reply = self._inbox_ctx.ask(gcs, cm.RegisterDriver("driver-0", pid, worker_id=worker_id), timeout)
        if not isinstance(reply, cm.DriverRegistered):
            raise ConnectionError(f"the GCS at {gcs} did not answer the driver's registration")
        return reply

    def register_again(
        self, gcs: Any, pid: int, job_id: JobID, worker_id: WorkerID, timeout: float
    ) -> cm.DriverRegistered:
        """Introduce the inbox to a restarted head's GCS, keeping the job; once started.

        The listener thread owns the inbox context, so it sends the registration between
        listens (the GCS records the sender as the driver's inbox) and hands back the reply.
        """
        registration = cm.RegisterDriver(
            f"driver-again-{job_id}-{time.monotonic_ns()}", pid, job_id, worker_id
        )
        answered: Future = Future()
        with self._lock:
            self._registrations[registration.req_id] = answered
            self._inbox_tells.append((gcs, registration))
        try:
            return answered.result(timeout)
        except FutureTimeout:
            with self._lock:
                self._registrations.pop(registration.req_id, None)
            raise ConnectionError(f"the GCS at {gcs} did not answer the driver's registration") from None

    def start(self, handler: Callable[[Any], None]) -> None:
        self._handler = handler
        for target, name in ((self._listen, "babyray-listener"), (self._send_loop, "babyray-sender")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def send(self, dest: Any, msg: Any) -> None:
        req_id = getattr(msg, "req_id", None) if self._head_parts else None
        if req_id is not None and getattr(msg, "reply_to", None) is not None:  # a request
            key = address_key(dest)
            with self._lock:
                if key in self._head_parts:
                    self._unanswered[req_id] = (dest, msg)
        if self._outbox.add(dest, msg):
            self._wake.put(None)

    def _send_loop(self) -> None:
        while self._running:
            if not self._outbox:
                try:
                    self._wake.get(timeout=LISTEN_TIMEOUT)
                except queue.Empty:
                    pass
            self._send_queued()

    def _send_queued(self) -> None:
        for dest, msg in self._outbox.drain():
            if self._redirects:
                dest = self._redirects.get(address_key(dest), dest)
            try:
                self._send_ctx.tell(dest, msg)
            except Exception:  # a dead destination must not stop the driver's sends
                self.log.exception("driver_send_failed", dest=str(dest), message=repr(msg))

    def _listen(self) -> None:
        while self._running:
            if self._inbox_tells:
                self._tell_from_inbox()
            try:
                thespian_patches.listen_each(self._inbox_ctx, LISTEN_TIMEOUT, self._received)
            except Exception:
                if self._running:
                    self.log.exception("driver_listen_failed")

    def _received(self, msg: Any) -> bool:
        """Hand the messages in ``msg`` to the core; whether the listener goes on listening
        (not when stopping, or when the inbox has registrations to send)."""
        handler = self._handler
        assert handler is not None, "start() gives the handler before the listener starts"
        for inner in unbatch(msg):
            if self._unanswered:
                with self._lock:
                    self._unanswered.pop(getattr(inner, "req_id", ""), None)
            if type(inner) is cm.DriverRegistered and self._registration_answered(inner):
                continue
            try:
                handler(inner)
            except Exception:
                self.log.exception("driver_message_failed", message=repr(inner))
        return self._running and not self._inbox_tells

    def _tell_from_inbox(self) -> None:
        with self._lock:
            tells, self._inbox_tells = self._inbox_tells, []
        for dest, msg in tells:
            try:
                self._inbox_ctx.tell(dest, msg)
            except Exception:
                self.log.exception("driver_send_failed", dest=str(dest), message=repr(msg))

    def _registration_answered(self, reply: cm.DriverRegistered) -> bool:
        with self._lock:
            answered = self._registrations.pop(reply.req_id, None)
        if answered is None:
            return False
        answered.set_result(reply)
        return True

    def retarget(self, moves: list[tuple[Any, Any]]) -> int:
        """The head restarted: send to each (old, new) part's successor from now on, and send the
        unanswered requests to the old parts again to their successors; returns how many."""
        successors = {address_key(old): new for old, new in moves}
        with self._lock:
            for key, dest in self._redirects.items():
                self._redirects[key] = successors.get(address_key(dest), dest)
            self._redirects.update(successors)
            self._head_parts = {address_key(new) for _, new in moves}
            unanswered, self._unanswered = self._unanswered, {}
        resend = [
            (successors[address_key(dest)], msg)
            for dest, msg in unanswered.values()
            if address_key(dest) in successors
        ]
        for dest, msg in resend:
            self.send(dest, msg)
        return len(resend)

    def close(self) -> None:
        self._running = False
        self._wake.put(None)
        for thread in self._threads:
            thread.join(timeout=2)
        if not any(thread.is_alive() for thread in self._threads):  # a context serves one thread
            self._send_queued()  # what was sent while the sender made its last round (final task events)
        for ctx in (self._inbox_ctx, self._send_ctx):  # ExternalContexts from system.private()
            try:
                ctx.exit_clone()
            except Exception as exc:  # the admin may already be gone
                self.log.debug("driver_context_close_failed", error=repr(exc))

"""How a driver (a process outside the actor system) talks to babyray's actors.

Two private Thespian contexts (DESIGN trap 6): a listener thread owns the inbox context and
hands every message to the core; a sender thread owns the outgoing context and sends what
user threads queued, coalesced into one Batch per destination while it was busy. So
``.remote()`` never waits on the network, and many threads may call the API at once.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from thespian.actors import ActorSystem

from babyray import log
from babyray.actors import messages as m
from babyray.actors.batching import Outbox, unbatch

LISTEN_TIMEOUT = 0.2


class DriverTransport:
    def __init__(self, system: ActorSystem) -> None:
        self._inbox_ctx = system.private().__enter__()
        self._send_ctx = system.private().__enter__()
        self._outbox = Outbox()
        self._wake = threading.Condition()
        self._running = True
        self._handler: Callable[[Any], None] | None = None
        self._threads: list[threading.Thread] = []
        self.log = log.get_logger("driver_transport")

    def register(self, gcs: Any, pid: int, timeout: float) -> m.DriverRegistered:
        """Introduce the inbox to the GCS; the reply carries the inbox's address."""
        reply = self._inbox_ctx.ask(gcs, m.RegisterDriver("driver-0", pid), timeout)
        if not isinstance(reply, m.DriverRegistered):
            raise ConnectionError(f"the GCS at {gcs} did not answer the driver's registration")
        return reply

    def start(self, handler: Callable[[Any], None]) -> None:
        self._handler = handler
        for target, name in ((self._listen, "babyray-listener"), (self._send_loop, "babyray-sender")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def send(self, dest: Any, msg: Any) -> None:
        if self._outbox.add(dest, msg):
            with self._wake:
                self._wake.notify()

    def _send_loop(self) -> None:
        while self._running:
            with self._wake:
                while self._running and not self._outbox:
                    self._wake.wait(LISTEN_TIMEOUT)
            for dest, msg in self._outbox.drain():
                try:
                    self._send_ctx.tell(dest, msg)
                except Exception:  # a dead destination must not stop the driver's sends
                    self.log.exception("driver_send_failed", dest=str(dest), message=repr(msg))

    def _listen(self) -> None:
        while self._running:
            try:
                msg = self._inbox_ctx.listen(LISTEN_TIMEOUT)
            except Exception:
                if self._running:
                    self.log.exception("driver_listen_failed")
                continue
            if msg is None:
                continue
            for inner in unbatch(msg):
                try:
                    self._handler(inner)
                except Exception:
                    self.log.exception("driver_message_failed", message=repr(inner))

    def close(self) -> None:
        self._running = False
        with self._wake:
            self._wake.notify()
        for thread in self._threads:
            thread.join(timeout=2)
        for ctx in (self._inbox_ctx, self._send_ctx):
            try:
                ctx.__exit__(None, None, None)
            except Exception:
                pass

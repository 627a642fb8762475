"""Requests a process sends and the replies that answer them, matched by request id.

A request carries a ``req_id`` made here; the caller's thread waits for the reply with that
id, which the process's message loop hands to ``route``: every ``Reply`` of
``babyray.protocol`` is one. Sending never blocks.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from typing import Any, Callable, Protocol

from babyray import exceptions
from babyray.ids import WorkerID
from babyray.protocol import Reply

REQUEST_TIMEOUT = 60.0


class Transport(Protocol):
    def send(self, dest: Any, msg: Any) -> None: ...


class _Reply:
    __slots__ = ("event", "msg")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.msg: Any = None


class Requests:
    """The requests of one process awaiting their replies."""

    def __init__(self, transport: Transport, identity: WorkerID, inbox: Any, lock: threading.RLock) -> None:
        self.transport = transport
        self.identity = identity
        self.inbox = inbox
        self.lock = lock
        self._replies: dict[str, _Reply] = {}
        self._req_ids = itertools.count()
        # Called before a thread waits for replies: a worker running an actor's call on its
        # loop thread hands the loop over (LoopHandover), else no reply would be received.
        self.on_wait: Callable[[], None] | None = None

    def new_req_id(self) -> str:
        return f"{self.identity}-{next(self._req_ids)}"

    def request(self, dest: Any, build: Callable[[str], Any], timeout: float = REQUEST_TIMEOUT) -> Any:
        """Send ``build(req_id)`` to ``dest`` and wait for the reply carrying that req_id."""
        reply = self.request_many([(dest, build)], timeout)[0]
        if reply is None:
            raise exceptions.RayError(f"no reply from {dest} within {timeout}s")
        return reply

    def request_many(self, requests: list[tuple[Any, Callable[[str], Any]]], timeout: float) -> list[Any]:
        """Send every ``build(req_id)`` to its ``dest`` at once; the replies in the same order
        (None for those that did not come within ``timeout`` seconds)."""
        waiting = []
        for dest, build in requests:
            req_id = self.new_req_id()
            reply = _Reply()
            with self.lock:
                self._replies[req_id] = reply
            msg = build(req_id)
            if getattr(msg, "reply_to", False) is None:
                msg = dataclasses.replace(msg, reply_to=self.inbox)
            self.transport.send(dest, msg)
            waiting.append((req_id, reply))
        if self.on_wait is not None:
            self.on_wait()
        deadline = time.monotonic() + timeout
        replies = []
        for req_id, reply in waiting:
            if reply.event.wait(max(0.0, deadline - time.monotonic())):
                replies.append(reply.msg)
                continue
            with self.lock:
                self._replies.pop(req_id, None)
            replies.append(None)
        return replies

    def request_by(self, dest: Any, build: Callable[[str], Any], deadline: float | None) -> Any:
        """``request``, answered before a ``get``'s ``deadline`` (``time.monotonic()``; None: none).

        Raises:
            GetTimeoutError: no reply before the deadline.
        """
        if deadline is None:
            return self.request(dest, build)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            try:
                return self.request(dest, build, min(remaining, REQUEST_TIMEOUT))
            except exceptions.RayError:
                if time.monotonic() < deadline:
                    raise
        raise exceptions.GetTimeoutError(f"get timed out waiting for a reply from {dest}")

    def route(self, msg: Any) -> bool:
        """Hand a reply to the request waiting for it (if it has not timed out); False if ``msg``
        is not a reply."""
        if not isinstance(msg, Reply):
            return False
        self._complete(msg)
        return True

    def _complete(self, msg: Reply) -> None:
        with self.lock:
            reply = self._replies.pop(msg.req_id, None)
        if reply is not None:
            reply.msg = msg
            reply.event.set()

"""The base of every babyray Thespian actor: a handler table, batching and thread hand-off.

Subclasses declare ``handlers`` (message type -> method name). ``receiveMessage`` unwraps
batches, dispatches, and never lets a handler's exception reach Thespian (which would run
the handler again and then return a PoisonMessage): the error is logged and the handler is
expected to reply with it where someone waits. Periodic duties (``timers``, started with
``every``) are re-armed here after each round, so one failing round does not stop them.
Everything sent with ``post`` during a turn leaves as one message per destination when the
turn ends.

Threads inside the actor (user code in a worker) call ``post_from_thread``; a pipe watched
with ThespianWatch wakes the actor's loop, which sends for them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

from thespian.actors import (
    Actor,
    ActorExitRequest,
    ChildActorExited,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

from babyray import log, thespian_patches
from babyray.actors.batching import Outbox, unbatch


class PartActor(Actor):
    """Common machinery; subclasses fill ``handlers`` and may override the hooks below."""

    handlers: ClassVar[dict[type, str]] = {}
    timers: ClassVar[dict[str, str]] = {}  # wakeup payload -> method name
    component: ClassVar[str] = "part"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outbox = Outbox()
        self._thread_outbox = Outbox()
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._waiting_in_turn = False  # the loop waits in its turn for a thread's post (wait_in_turn)
        self._posted_in_turn = threading.Event()
        self._thread_wakes = 0  # wake-ups threads asked for so far (wake_from_thread)
        self._periods: dict[str, float] = {}  # running periodic duty -> its period in seconds
        self.messages_left = 0  # messages of the batch being handled that come after this one
        self.log = log.get_logger(self.component)

    # ---- sending -----------------------------------------------------------------------

    def post(self, dest: Any, msg: Any) -> None:
        """Send ``msg`` to ``dest`` at the end of this turn, batched with others to it."""
        self._outbox.add(dest, msg)

    def reply(self, request: Any, sender: Any, msg: Any) -> None:
        """Answer ``request``: to its ``reply_to`` if set (drivers reply to their inbox)."""
        self.post(getattr(request, "reply_to", None) or sender, msg)

    def post_from_thread(self, dest: Any, msg: Any, wake: bool = True) -> None:
        """Send from a thread other than the actor's: the actor loop does the sending.

        ``wake=False`` leaves the message for the next wake-up, so a thread that knows more
        messages follow (a worker with tasks queued) packs them into one send.
        """
        self._thread_outbox.add(dest, msg)
        if wake:
            self.wake_from_thread()

    def wake_from_thread(self) -> None:
        """Have the actor's loop send now what threads posted with ``wake=False``."""
        assert self._wake_w is not None, "enable_thread_posts() first"
        self._thread_wakes += 1
        if self._waiting_in_turn:  # read after the post was queued and counted: see wait_in_turn
            self._posted_in_turn.set()
        else:
            os.write(self._wake_w, b"x")

    def thread_wakes(self) -> int:
        """How many wake-ups threads asked for so far: what ``wait_in_turn`` waits to change."""
        return self._thread_wakes

    def wait_in_turn(self, seconds: float, since: int) -> None:
        """Keep the loop in this turn until a thread asks for a wake-up after ``since`` (what
        ``thread_wakes()`` gave before the work was handed to the thread), at most ``seconds``.

        For work a thread finishes quickly (an actor call): its result leaves in the turn that
        brought the call, without the wake pipe's extra turn of Thespian's loop, which cost a
        worker more CPU than the call. A wake-up before the wait began (the thread was quicker
        than the loop) ends it at once: the thread counts it before it reads
        ``_waiting_in_turn``, which the wait sets before it compares the count. One that misses
        the wait still wakes the loop: the thread queues its message before that read, and the
        turn looks at the thread outbox after clearing the flag.
        """
        self._waiting_in_turn = True
        self._posted_in_turn.clear()
        try:
            if self._thread_wakes == since:
                self._posted_in_turn.wait(seconds)
        finally:
            self._waiting_in_turn = False

    def enable_thread_posts(self) -> None:
        if self._wake_r is None:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)

    def _flush(self) -> None:
        for dest, msg in self._outbox.drain():
            self.send(dest, msg)

    def post_behind_thread_posts(self, dest: Any, msg: Any) -> None:
        """``post``, after what threads have posted so far (those leave in this turn too)."""
        self._take_thread_posts()
        self._outbox.add(dest, msg)

    def _drain_thread_posts(self) -> None:
        """Move the messages threads posted to the outbox (sent when this turn ends)."""
        assert self._wake_r is not None, "enable_thread_posts() first"
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self._take_thread_posts()

    def _take_thread_posts(self) -> None:
        for dest, msg in self._thread_outbox.drain():
            self._outbox.add(dest, msg)

    def every(self, seconds: float, timer: str) -> None:
        """Run the periodic duty ``timer`` (a key of ``timers``) every ``seconds`` from now on.

        Each round is re-armed after it runs, whether or not it raised; calling this again
        for a running duty only changes its period.
        """
        armed = timer in self._periods
        self._periods[timer] = seconds
        if not armed:
            self.wakeupAfter(timedelta(seconds=seconds), payload=timer)

    def stop_timer(self, timer: str) -> None:
        """Stop the periodic duty ``timer`` after its current round (``every`` starts it again)."""
        self._periods.pop(timer, None)

    def _run_timer(self, message: WakeupMessage, sender: Any) -> None:
        """One round of a periodic duty, re-armed in any case (an error is logged by ``_run``)."""
        timer = message.payload
        try:
            self._run(self.timers.get(timer), message, sender)
        finally:
            seconds = self._periods.get(timer)
            if seconds is not None:
                self.wakeupAfter(timedelta(seconds=seconds), payload=timer)

    # ---- receiving ---------------------------------------------------------------------

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        if isinstance(message, WatchMessage):
            if self._wake_r in message.ready:
                self._drain_thread_posts()
            ready = [fd for fd in message.ready if fd != self._wake_r]
            if ready:
                self._run_hook(self.on_fds_ready, ready)
        elif isinstance(message, WakeupMessage):
            self._run_timer(message, sender)
        elif isinstance(message, ActorExitRequest):
            self._run("on_exit", message, sender)
        elif isinstance(message, ChildActorExited):
            self._run("on_child_exited", message, sender)
        elif isinstance(message, PoisonMessage):
            self.log.warning("message_undeliverable", message=repr(message.poisonMessage)[:200])
        else:
            messages = list(unbatch(message))
            for index, msg in enumerate(messages, 1):
                self.messages_left = len(messages) - index
                if not self.intercept(msg):
                    self._run(self.handlers.get(type(msg)), msg, sender)
            self.messages_left = 0
        if self._wake_r is not None and self._thread_outbox:
            self._drain_thread_posts()
        self._flush()
        self._run_hook(self.after_turn)
        watched = ([self._wake_r] if self._wake_r is not None else []) + self.watched_fds()
        return ThespianWatch(watched) if watched else None

    def after_turn(self) -> None:
        """Hook: work that waits until this turn's messages have been sent."""

    def watched_fds(self) -> list[int]:
        """Hook: more file descriptors to watch; ``on_fds_ready`` gets those that become readable."""
        return []

    def on_fds_ready(self, fds: list[int]) -> None:
        """Hook: some of ``watched_fds`` are readable."""

    def child_process(self, address: Any) -> Any:
        """The ``multiprocessing.Process`` of a child actor this actor created (None if not found)."""
        return thespian_patches.child_process(self, address)

    def on_exit(self, msg: ActorExitRequest, sender: Any) -> None:
        """Hook: the actor is being stopped."""

    def on_child_exited(self, msg: ChildActorExited, sender: Any) -> None:
        """Hook: a child actor's process ended."""

    def intercept(self, msg: Any) -> bool:
        """Hook: handle ``msg`` outside the handler table; True if it was handled."""
        return False

    def _run_hook(self, hook: Callable[..., object], *args: Any) -> None:
        try:
            hook(*args)
        except Exception:  # as for handlers: log, keep the part running
            self.log.exception("handler_failed", handler=hook.__name__)

    def _run(self, method: str | None, msg: Any, sender: Any) -> None:
        if method is None:
            if not isinstance(msg, (ActorExitRequest, ChildActorExited, WakeupMessage)):
                self.log.warning("message_unhandled", message_type=type(msg).__name__)
            return
        try:
            getattr(self, method)(msg, sender)
        except Exception:  # one bad message must not take the part down
            self.log.exception(
                "handler_failed",
                handler=method,
                message_type=type(msg).__name__,
                timer=msg.payload if isinstance(msg, WakeupMessage) else None,
            )

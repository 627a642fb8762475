"""Run work on an actor's own loop thread, with a standby thread that takes the loop over.

A sync actor's method called on an idle worker is quickest run on the thread that received
the call: no hand-off to the executor thread and back (two thread wake-ups, ~0.1 ms of the
round trip on these machines). But while it runs that thread receives nothing, and a method
may wait for a message (``get`` of a value still to come) or run long (cancel requests and
other callers' messages would wait for it). So the loop is handed over: when the work blocks
(``hand_over``) or has run ``after`` seconds (a one-shot ``ITIMER_REAL``; its ``SIGALRM``
handler runs between the work's bytecodes on this thread), a standby thread runs Thespian's
loop nested in the turn that started the work, until the work ends and takes the loop back.

Who hands over is decided by one ``list.pop()`` on a list holding one token while work runs:
the work ending, the alarm and a block can race (the alarm's handler runs between any two
bytecodes of this thread), and exactly one pop gets the token.
"""

from __future__ import annotations

import _signal
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from thespian.system.transport import Thespian__Run_Terminated

from babyray import log

T = TypeVar("T")


class LoopHandover:
    """The loop thread's work, and the standby thread that runs the actor's loop meanwhile.

    Made on the loop thread, which must be the process's main thread (signal handlers run
    there); ``manager`` is the actor's Thespian ``ActorManager`` and ``wake`` wakes its loop.
    """

    def __init__(self, manager: Any, wake: Callable[[], None], after: float) -> None:
        self._manager = manager
        self._wake = wake
        self._after = after
        self._loop_thread = threading.get_ident()
        self.loop_thread: int | None = self._loop_thread  # the thread running the loop now, if any
        self._token: list[None] = []  # holds one token while work runs and the loop is not handed over
        self._takeover_r, self._takeover_w = os.pipe()
        self._returned = threading.Event()  # the standby thread left the loop
        self._reclaiming = False
        self.log = log.get_logger("loop_handover")
        signal.signal(signal.SIGALRM, self._on_alarm)
        threading.Thread(target=self._standby, name="babyray-loop-standby", daemon=True).start()

    def usable(self) -> bool:
        """False once user code has set a ``SIGALRM`` handler of its own: then a long call
        could not hand the loop over, so calls go to the executor thread instead. (Read through
        ``_signal``: ``signal.getsignal`` wraps the handler in an enum lookup that raises and
        catches a ValueError on every call.)"""
        return _signal.getsignal(signal.SIGALRM) == self._on_alarm

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` on this (the loop) thread, the loop handed over if it blocks or runs long."""
        self.loop_thread = None
        self._token.append(None)
        signal.setitimer(signal.ITIMER_REAL, self._after)
        try:
            return work()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            try:
                self._token.pop()
            except IndexError:  # handed over: take the loop back
                self._take_back()
            self.loop_thread = self._loop_thread

    def hand_over(self) -> None:
        """The work is about to wait: let the standby thread run the loop now (no-op outside
        ``run`` and on other threads)."""
        if threading.get_ident() != self._loop_thread:
            return
        try:
            self._token.pop()
        except IndexError:
            return
        os.write(self._takeover_w, b"x")

    def _on_alarm(self, signum: int, frame: Any) -> None:
        self.hand_over()

    def _take_back(self) -> None:
        self._reclaiming = True
        self._wake()  # the standby's loop turns, sees _reclaiming and returns
        self._returned.wait()
        self._returned.clear()
        self._reclaiming = False

    def _standby(self) -> None:
        while os.read(self._takeover_r, 1):
            self.loop_thread = threading.get_ident()
            result = self._serve()
            if not self._reclaiming:  # the loop ended by itself: the actor is exiting
                self._exit(result)
            self.loop_thread = None
            self._returned.set()

    def _serve(self) -> Any:
        """Run the actor's loop, nested in the turn the loop thread is in, until taken back."""
        manager = self._manager

        def handle(envelope: Any) -> Any:
            handled = manager.handleMessages(envelope)
            return False if self._reclaiming else handled

        try:
            return manager.transport.run(handle)
        except Exception:  # as the actor's own loop would: stop the actor
            self.log.exception("standby_loop_failed")
            manager._shutdownActor(True)
            return Thespian__Run_Terminated()

    def _exit(self, result: Any) -> None:
        """The actor stopped while the loop thread was still in its work (as Thespian ends the
        process when its loop returns): send what is queued and leave."""
        self.log.info("actor_loop_ended_during_work", result=type(result).__name__)
        self._manager.drainTransmits()
        os._exit(0)

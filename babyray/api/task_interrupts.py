"""Interrupting a task for a plain ``ray.cancel``, only while the task's own code runs.

A cancel raises KeyboardInterrupt in the thread running the task (``PyThreadState_SetAsyncExc``),
which Python delivers at that thread's next bytecode. Landing in babyray's own work (storing
the returns, a request half sent on the store's allocation channel, a table half updated) it
would leave that state torn: the worker's next task then waits forever for a reply already
read. So the exception is set only while the task's function runs (or its generator computes a
value), one set too late to land there is cleared as the function returns, and a babyray API
call the task makes (``shielded``) holds a cancel back until it returns: a ``get`` or ``wait``
blocked for values raises it at once, from where it waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Callable, Container, Iterator
from typing import Any, TypeVar

from babyray.ids import TaskID

F = TypeVar("F", bound=Callable[..., Any])


def _set_async_exc(thread: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in ``thread`` at its next bytecode (None: clear one not raised yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), None if exc is None else ctypes.py_object(exc)
    )


class TaskInterrupts:
    """Which task's own code runs now, on which thread, and whether it is inside a babyray API
    call; thread-safe. ``on_held_back`` (called without the lock) wakes a ``get`` that waits."""

    def __init__(self, on_held_back: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._running: tuple[TaskID, int] | None = None  # (task, the thread running its code)
        self._api_depth = 0  # babyray API calls the task's thread is in
        self._sent = False  # a KeyboardInterrupt was set for the running task
        self._held_back = False  # a cancel came during an API call: raised as it returns
        self._on_held_back = on_held_back

    @contextlib.contextmanager
    def user_code(self, task_id: TaskID, cancelled: Container[TaskID]) -> Iterator[None]:
        """Run the task's own code in the block, where ``interrupt`` may stop it.

        Raises:
            KeyboardInterrupt: the task is among ``cancelled`` already, or was interrupted.
        """
        thread = threading.get_ident()
        with self._lock:
            if task_id in cancelled:
                raise KeyboardInterrupt
            self._running = (task_id, thread)
        try:
            yield
        finally:
            with self._lock:
                self._running = None
                self._api_depth, self._sent, self._held_back = 0, False, False
                _set_async_exc(thread, None)

    def interrupt(self, task_id: TaskID) -> bool:
        """Raise KeyboardInterrupt in ``task_id``'s code if it runs now (in an API call: as the
        call returns, or at once from a wait for values); whether it runs."""
        with self._lock:
            if self._running is None or self._running[0] != task_id:
                return False
            if self._api_depth == 0:
                _set_async_exc(self._running[1], KeyboardInterrupt)
                self._sent = True
                return True
            self._held_back = True
        self._on_held_back()
        return True

    def held_back(self) -> bool:
        """Whether the calling thread's task was cancelled during the API call it is in (read
        without the lock: ``on_held_back`` follows the change)."""
        running = self._running
        return self._held_back and running is not None and running[1] == threading.get_ident()

    @contextlib.contextmanager
    def api_call(self) -> Iterator[None]:
        """A babyray API call, which a cancel does not interrupt midway.

        Raises:
            KeyboardInterrupt: the task was cancelled before or during the call.
        """
        thread = threading.get_ident()
        with self._lock:
            ours = self._running is not None and self._running[1] == thread
            if ours:
                _set_async_exc(thread, None)  # one set as the call began is raised here instead
                if self._sent:
                    raise KeyboardInterrupt
                self._api_depth += 1
        if not ours:
            yield
            return
        try:
            yield
        finally:
            with self._lock:
                self._api_depth -= 1
                raise_now = self._api_depth == 0 and self._held_back
                if raise_now:
                    self._held_back, self._sent = False, True
            if raise_now:
                raise KeyboardInterrupt


_installed: TaskInterrupts | None = None  # this worker's, once it has started


def install(interrupts: TaskInterrupts) -> None:
    global _installed
    _installed = interrupts


def shielded(function: F) -> F:
    """Mark a public API function: in a task, a cancel does not interrupt it midway."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        interrupts = _installed
        if interrupts is None:
            return function(*args, **kwargs)
        with interrupts.api_call():
            return function(*args, **kwargs)

    return call  # type: ignore[return-value]

"""Interrupting a task for a plain ``ray.cancel``, only while the task's own code runs.

A cancel raises KeyboardInterrupt in the thread running the task (``PyThreadState_SetAsyncExc``),
which Python delivers at that thread's next bytecode. Landing in the worker's own work (storing
the returns, a request half sent on the store's allocation channel) it would leave that state
torn: the next task of the worker then waits forever for a reply already read. So the exception
is set only while the task's function runs (or its generator computes a value), and one set too
late to land there is cleared as the function returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Container, Iterator

from babyray.ids import TaskID


def _set_async_exc(thread: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in ``thread`` at its next bytecode (None: clear one not raised yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), None if exc is None else ctypes.py_object(exc)
    )


class TaskInterrupts:
    """Which task's own code runs now, on which thread; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: tuple[TaskID, int] | None = None  # (task, the thread running its code)

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
                _set_async_exc(thread, None)

    def interrupt(self, task_id: TaskID) -> bool:
        """Raise KeyboardInterrupt in ``task_id``'s code if it runs now; whether it did."""
        with self._lock:
            if self._running is None or self._running[0] != task_id:
                return False
            _set_async_exc(self._running[1], KeyboardInterrupt)
            return True

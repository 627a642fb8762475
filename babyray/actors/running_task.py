"""Which task a worker runs, kept where its local scheduler can read it once the worker died.

A worker with tasks queued behind the one it runs sends the results of several together
(``babyray.actors.worker``), so when it dies its scheduler cannot tell from the messages it
got which of the tasks it sent was running: a task that finished, whose result had not left
yet, would be charged a retry for a crash of the task after it. The worker writes the running
task's id into a small file it maps into memory (a memory write, no system call) before it
runs the task and clears it after; the scheduler reads the file when the worker has died, or
when it did not answer a forced cancel in time (is the task still running there?).
"""

from __future__ import annotations

import mmap
import os

from babyray.ids import TaskID, WorkerID

_SLOT_BYTES = 32  # a task id is 16 hex digits; the rest stays zero


def _slot_path(session_dir: str, worker_id: WorkerID) -> str:
    return os.path.join(session_dir, "running", worker_id)


class RunningTaskSlot:
    """The worker's side: ``set`` before running a task, ``clear`` when it has run."""

    def __init__(self, session_dir: str, worker_id: WorkerID) -> None:
        path = _slot_path(session_dir, worker_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb+") as f:
            f.write(bytes(_SLOT_BYTES))
            f.flush()
            self._map = mmap.mmap(f.fileno(), _SLOT_BYTES)

    def set(self, task_id: TaskID) -> None:
        self._map[:] = task_id.encode().ljust(_SLOT_BYTES, b"\0")

    def clear(self) -> None:
        self._map[:] = bytes(_SLOT_BYTES)


def read_running_task(session_dir: str, worker_id: WorkerID) -> TaskID | None:
    """The scheduler's side: the task the worker runs now (None if none, or if it never ran one)."""
    try:
        with open(_slot_path(session_dir, worker_id), "rb") as f:
            data = f.read(_SLOT_BYTES)
    except FileNotFoundError:
        return None
    task_id = data.rstrip(b"\0").decode()
    return TaskID(task_id) if task_id else None


def take_running_task(session_dir: str, worker_id: WorkerID) -> TaskID | None:
    """For a worker whose process ended: the task it was running; removes the file."""
    task_id = read_running_task(session_dir, worker_id)
    try:
        os.unlink(_slot_path(session_dir, worker_id))
    except FileNotFoundError:
        pass
    return task_id

"""An admin that ends, with every process of its cluster, when the process that started it ends.

A driver's private cluster (and a joining driver's own admin) must not outlive the driver,
however it ends: ``shutdown()``, exit, an uncaught SIGTERM (Python's default action skips
``atexit``), SIGKILL, or a signal that interrupts ``init()`` or ``shutdown()`` half-way. So
the admin watches its starter itself, from its first moment: the starter opens a pidfd of
itself before Thespian forks the admin (``tie_next_admin``); the admin inherits it, and a
thread of the admin waits for it to become readable (the starter ended) and then ends the
admin's process group: the admin, its logger, the parts and their workers
(``session.end_own_group``). Thespian's admin daemonizes into a process group and session of
its own (see docs/design.md, "Thespian: an admin outlives its starter"), which every process
it forks shares; no babyray process leaves that group.
"""
from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import Any

from thespian.system import multiprocCommon

from babyray.session import end_own_group

_tie: tuple[int, str] | None = None  # (pidfd of the starter, session dir) for the admin forked next
_original_start_admin = multiprocCommon.startAdmin


def tie_next_admin(session_dir: str) -> None:
    """Make the admin this process forks next end when this process ends; ``untie`` after."""
    global _tie
    untie()
    _tie = (os.pidfd_open(os.getpid()), session_dir)


def untie() -> None:
    """Close this process's side of the tie (the admin forked meanwhile keeps its own)."""
    global _tie
    if _tie is not None:
        os.close(_tie[0])
        _tie = None


def _watch_starter(pidfd: int, session_dir: str) -> None:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while not poller.poll():
        pass
    end_own_group(session_dir)


def _tied(admin_class: Any, pidfd: int, session_dir: str) -> Callable[..., Any]:
    """``admin_class``, whose construction (in the admin's process) starts the watch."""
    def make_admin(*args: Any) -> Any:
        admin = admin_class(*args)
        threading.Thread(target=_watch_starter, args=(pidfd, session_dir), name="babyray-starter-watch",
                         daemon=True).start()
        return admin
    make_admin.__name__ = admin_class.__name__  # Thespian names the admin's process after it
    return make_admin


def _start_admin_tied(admin_class: Any, *args: Any) -> None:
    """Thespian's ``startAdmin`` (run in the process forked to start the admin)."""
    if _tie is None:
        _original_start_admin(admin_class, *args)
    else:
        _original_start_admin(_tied(admin_class, *_tie), *args)


multiprocCommon.startAdmin = _start_admin_tied

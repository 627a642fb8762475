"""An admin that ends, with every process of its cluster, when the process that started it ends.

A driver's private cluster (and a joining driver's own admin) must not outlive the driver,
however it ends: ``shutdown()``, exit, an uncaught SIGTERM (Python's default action skips
``atexit``), SIGKILL, or a signal that interrupts ``init()`` or ``shutdown()`` half-way. So
the admin watches its starter itself, from its first moment: the starter opens a pidfd of
itself before Thespian forks the admin (``tie_next_admin``); the admin inherits it (and this
module's state: Thespian forks), and a thread of the admin (``watch_starter``) waits for it to become readable (the starter ended) and then ends the
admin's process group: the admin, its logger, the parts and their workers
(``session.end_own_group``). Thespian's admin daemonizes into a process group and session of
its own (see docs/design.md, "Thespian: an admin outlives its starter"), which every process
it forks shares; no babyray process leaves that group.
"""

from __future__ import annotations

import os
import select
import threading

from babyray.session import end_own_group

_tie: tuple[int, str] | None = None  # (pidfd of the starter, session dir) for the admin forked next


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


def watch_starter() -> None:
    """In an admin just made (``thespian_patches.start_admin_tied``): if its starter tied it,
    end the admin's process group once the starter ended (a thread waits)."""
    if _tie is not None:
        threading.Thread(
            target=_wait_then_end_group, args=_tie, name="babyray-starter-watch", daemon=True
        ).start()


def _wait_then_end_group(pidfd: int, session_dir: str) -> None:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while not poller.poll():
        pass
    end_own_group(session_dir)

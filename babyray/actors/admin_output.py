"""Where a private cluster's output goes: an admin forked by a driver inherits the driver's
stdout and stderr, and every part and worker forked from the admin inherits them from it, so
what tasks and actors print reaches the driver. A driver started with
``init(log_to_driver=False)`` asks instead (``send_next_admin_output_to``) that the admin it
forks next point both at a file of the session's logs before it forks anything
(``redirect_in_admin``, called by ``thespian_patches.start_admin_tied``).
"""

from __future__ import annotations

import os

_next_output: str | None = None  # the file for the admin this process forks next; None: inherit


def send_next_admin_output_to(path: str | None) -> None:
    """Have the admin this process forks next write its stdout and stderr to ``path``
    (appended; None: this process's own, the default)."""
    global _next_output
    _next_output = path


def redirect_in_admin() -> None:
    """In an admin just forked: send its output to the file its starter gave, if any."""
    if _next_output is not None:
        write_output_to(_next_output)


def write_output_to(path: str) -> None:
    """Point this process's file descriptors 1 and 2 at ``path`` (appended to, made if missing)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)

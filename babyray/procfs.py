"""What Linux's ``/proc`` says about processes: one parser of ``/proc/<pid>/stat``.

Everything here reads the live system and answers for the moment of the call: a process
may end (and its pid be reused) right after.
"""

from __future__ import annotations

import glob
import os
import signal
from dataclasses import dataclass

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcessStat:
    """The fields of ``/proc/<pid>/stat`` babyray uses (see proc(5))."""

    pid: int
    state: str
    """One letter: R running, S sleeping, D disk wait, T stopped, Z zombie, ..."""
    ppid: int
    pgid: int
    user_ticks: int
    system_ticks: int

    @property
    def zombie(self) -> bool:
        """Ended, waiting for its parent to collect it."""
        return self.state == "Z"

    @property
    def cpu_seconds(self) -> float:
        """CPU time used so far, user and system."""
        return (self.user_ticks + self.system_ticks) / _CLOCK_TICKS


def stat(pid: int) -> ProcessStat | None:
    """The process's stat line parsed; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            line = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2, in parentheses) may hold spaces and parentheses: the
    # fields that follow start after its last ")".
    fields = line.rsplit(")", 1)[1].split()
    return ProcessStat(pid, fields[0], int(fields[1]), int(fields[2]), int(fields[11]), int(fields[12]))


def processes() -> list[ProcessStat]:
    """Every process visible in this pid namespace."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (process := stat(int(entry))) is not None:
            found.append(process)
    return found


def is_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as ended)."""
    process = stat(pid)
    return process is not None and not process.zombie


def is_ending(pid: int) -> bool:
    """True once ``pid`` has ended or is bound to: a SIGKILL is pending for it (a process killed
    an instant ago still runs until the kernel takes it down)."""
    if not is_running(pid):
        return True
    try:
        with open(f"/proc/{pid}/status") as f:
            pending = [int(line.split()[1], 16) for line in f if line.startswith(("SigPnd:", "ShdPnd:"))]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return any(mask & (1 << (signal.SIGKILL - 1)) for mask in pending)


def processes_with_environment(variable: str, value: str) -> list[int]:
    """Running (not zombie) processes whose environment, as they started, sets ``variable`` to
    ``value``: a process started with it and everything forked or started from that (a
    Thespian admin and its actors keep their starter's command line, so only this finds them).
    A variable set after a process started is not in what ``/proc`` shows of it."""
    entry = f"{variable}={value}".encode()
    found = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        pid = int(path.split("/")[2])
        if entry in environ and is_running(pid):
            found.append(pid)
    return found


def children(ppid: int) -> list[ProcessStat]:
    """The processes whose parent is ``ppid``, zombies among them."""
    return [process for process in processes() if process.ppid == ppid]


def group_members(pgid: int) -> list[int]:
    """The running (not zombie) processes of process group ``pgid``."""
    return [process.pid for process in processes() if process.pgid == pgid and not process.zombie]


def network_namespace() -> str:
    """This process's network namespace, as ``net:[<inode>]`` ("" if unreadable)."""
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return ""

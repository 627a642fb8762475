"""The drivers connected to the GCS (memory only: a restarted GCS learns them as they reconnect).

A driver registers, pings through its head watch (``GetNodes`` with its job id), and
unregisters when it shuts down. One killed without unregistering is found gone: on the GCS's
host by its pid, elsewhere when its pings stop for the timeout. Either way its ``worker_id``
(the owner of its refs) is then dead. No I/O and no clock: calls
take ``now`` (monotonic seconds), and whether a local pid runs is asked of ``pid_alive``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from babyray.ids import JobID, WorkerID

__all__ = ["DriverRegistry"]


class DriverRegistry:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._drivers: dict[JobID, dict] = {}  # job id -> its record
        self._last_seen: dict[JobID, float] = {}  # job id -> when its watch last pinged

    def register(
        self,
        job_id: JobID,
        pid: int,
        ip: str,
        inbox: Any,
        now: float,
        wall_time: float,
        worker_id: WorkerID,
    ) -> None:
        self._drivers[job_id] = {
            "job_id": job_id,
            "pid": pid,
            "ip": ip,
            "inbox": inbox,
            "registered_at": wall_time,
            "worker_id": worker_id,
        }
        self._last_seen[job_id] = now

    def unregister(self, job_id: JobID) -> dict | None:
        """Forget the driver; its record, None if it was not registered."""
        self._last_seen.pop(job_id, None)
        return self._drivers.pop(job_id, None)

    def ping(self, job_id: JobID, now: float) -> None:
        if job_id in self._drivers:
            self._last_seen[job_id] = now

    def gone(self, now: float, local_ips: Collection[str], pid_alive: Callable[[int], bool]) -> list[dict]:
        """Forget and return the drivers that ended without unregistering."""
        found = []
        for job_id, driver in list(self._drivers.items()):
            if driver["ip"] in local_ips:
                ended = not pid_alive(driver["pid"])
            else:
                ended = now - self._last_seen.get(job_id, now) > self.timeout
            if ended:
                self.unregister(job_id)
                found.append(driver)
        return found

    def records(self) -> tuple[dict, ...]:
        return tuple(self._drivers.values())

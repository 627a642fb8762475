"""A connected driver's watch on its cluster's head, which finds the head again after a restart.

A head restarted on the same address (``babyray start --head`` again, with the same GCS
store) is new processes: its GCS, global scheduler and node parts have new addresses. A
driver that joined before must learn them. ``HeadWatch`` asks the GCS for the node table
every PING_PERIOD seconds from a private Thespian context of its own (see docs/design.md,
"Thespian: tell and ask from outside an actor"). When no answer comes (at once from a dead
process, after PING_TIMEOUT from a silent one) it looks the head's directory up at the
cluster address until a head answers there, and if the GCS has moved it hands the new
ClusterInfo to ``on_new_head``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from babyray import log
from babyray.actors.batching import address_key
from babyray.cluster import ClusterStartError, lookup_cluster
from babyray.ids import JobID
from babyray.protocol import cluster as cm

PING_PERIOD = 1.0
PING_TIMEOUT = 10.0
LOOKUP_TIMEOUT = 3.0


class HeadWatch:
    """A daemon thread that calls ``on_new_head(info, seconds_unreachable)`` when the head at
    ``address`` restarted; ``current_gcs()`` is the GCS the driver sends to now."""

    def __init__(
        self,
        system: Any,
        address: str,
        job_id: JobID,
        current_gcs: Callable[[], Any],
        on_new_head: Callable[[cm.ClusterInfo, float], None],
    ) -> None:
        self._system = system
        self._address = address
        self._job_id = job_id
        self._current_gcs = current_gcs
        self._on_new_head = on_new_head
        self._stop = threading.Event()
        self.log = log.get_logger("head_watch")
        self._thread = threading.Thread(target=self._run, name="babyray-head-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._system.private() as ctx:
                while not self._stop.wait(PING_PERIOD):
                    try:
                        gcs = self._current_gcs()
                        if not self._answers(ctx, gcs):
                            self._find_head(ctx, gcs)
                    except Exception:  # one failed round must not end the watch
                        if not self._stop.is_set():
                            self.log.exception("head_watch_round_failed", address=self._address)
        except Exception:
            if not self._stop.is_set():
                self.log.exception("head_watch_failed", address=self._address)

    def _answers(self, ctx: Any, gcs: Any) -> bool:
        try:
            return isinstance(
                ctx.ask(gcs, cm.GetNodes("head-watch", job_id=self._job_id), PING_TIMEOUT), cm.Nodes
            )
        except Exception:  # Thespian reports a dead target as a failed send
            return False

    def _find_head(self, ctx: Any, gcs: Any) -> None:
        """Look the head up until one answers; hand it on if its GCS is not ``gcs``."""
        lost_at = time.monotonic()
        self.log.warning("driver_head_unreachable", address=self._address, gcs=str(gcs))
        while not self._stop.is_set():
            try:
                info = lookup_cluster(ctx, self._address, LOOKUP_TIMEOUT)
            except ClusterStartError:
                continue  # no head at the address yet: keep looking
            if address_key(info.gcs) == address_key(gcs):
                self.log.info("driver_head_answers_again", address=self._address, gcs=str(gcs))
                return
            try:
                self._on_new_head(info, time.monotonic() - lost_at)
            except Exception:  # the GCS stays the old one: the next ping tries again
                self.log.exception("driver_reconnect_failed", address=self._address, gcs=str(info.gcs))
            return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)

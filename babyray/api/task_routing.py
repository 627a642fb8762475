"""Owner-side locality: send a task straight to the node that holds its inputs.

A task whose stored inputs live mostly on another node would otherwise go to this node's
local scheduler, up to the global scheduler, and down to that node: two control-plane hops
(~1-2 ms each between hosts) more than needed. Like Ray's owners, which lease a worker from
the node with the most argument bytes, the owner sends such a task to that node's local
scheduler itself, and tells the GCS where it placed it (so the task is resubmitted if that
node dies). Only with the locality-aware policy, only for the DEFAULT strategy, and only to
an alive node that can fit the task; anything else takes the usual path.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from babyray.actors.locality import LOCALITY_SPILL_BYTES, stored_inputs
from babyray.actors.resources import fits
from babyray.protocol import cluster as cm
from babyray.protocol import values as vm

if TYPE_CHECKING:
    from babyray.api.core import CoreClient

REFRESH_SECONDS = 1.0  # at most one node-table lookup per second, when a node is unknown
STALE_SECONDS = 5.0  # a table this old is looked up again (nodes die and join)


class TaskRouter:
    """Chooses where an owner sends a task; knows the alive nodes' schedulers."""

    def __init__(self, core: "CoreClient", locality: bool = True) -> None:
        self.core = core
        self.locality = locality
        self.nodes: dict[str, cm.NodeInfo] = {}
        self._refreshing = False
        self._refreshed_at = 0.0
        self._lock = threading.Lock()

    def update(self, nodes: tuple) -> None:
        """Take a node table (GetNodes reply) as the alive nodes to route to."""
        self.nodes = {n.node_id: n for n in nodes if n.alive and n.scheduler is not None}
        self._refreshed_at = time.monotonic()

    def destination(self, spec: vm.TaskSpec, default: Any) -> Any:
        """The scheduler to send ``spec`` to: the node holding most of its inputs, or ``default``."""
        if (
            not self.locality
            or spec.scheduling_strategy not in (None, "DEFAULT")
            or spec.actor_id is not None
        ):
            return default
        inputs = stored_inputs(spec)
        if not inputs:
            return default
        by_node: Counter = Counter()
        for node_id, size in inputs:
            by_node[node_id] += size
        best, best_bytes = by_node.most_common(1)[0]
        if best == self.core.node_id or best_bytes - by_node.get(self.core.node_id, 0) < LOCALITY_SPILL_BYTES:
            return default
        node = self.nodes.get(best)
        if node is None or time.monotonic() - self._refreshed_at > STALE_SECONDS:
            self._refresh()
        if node is None:
            return default
        if not fits(node.resources, spec.resources):
            return default
        self.core.tasks.task_placed(spec, best)
        return node.scheduler

    def _refresh(self) -> None:
        """Look the node table up again in the background (the owner's lock is held here)."""
        with self._lock:
            if self._refreshing or time.monotonic() - self._refreshed_at < REFRESH_SECONDS:
                return
            self._refreshing = True
        threading.Thread(target=self._lookup, name="babyray-router-nodes", daemon=True).start()

    def _lookup(self) -> None:
        try:
            self.update(self.core.request(self.core.gcs, lambda r: cm.GetNodes(r), 10.0).nodes)
        except Exception as exc:  # the GCS is away: keep the old table, try again later
            self.core.log.info("router_nodes_unavailable", error=repr(exc))
        finally:
            with self._lock:
                self._refreshing = False
                self._refreshed_at = time.monotonic()

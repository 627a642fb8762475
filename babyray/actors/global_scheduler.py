"""The global scheduler: places tasks that local schedulers (or drivers without a node)
pass up.

It learns the node table from the GCS (NodesChanged, and a GetNodes poll for load) and
places each task with a ``Placement`` (babyray.actors.scheduling_policy): the scheduling
strategy first, then the policy, locality-aware by default or queue-only (selectable for
the benchmark). A task no node can run yet waits here, pending, until a node with the
resources joins, until it is cancelled, or until the placement group it runs in is removed
(then it fails with TaskPlacementGroupRemoved, as do tasks that arrive for that group later;
an actor's creation is just dropped, the GCS having declared the actor dead).

It also reserves placement groups for the GCS: it chooses a node for every bundle
(babyray.actors.bundle_placement), then reserves them in two phases, all or nothing: every
chosen node's local scheduler takes its bundles' resources (PrepareBundles), and only when
all did are the bundles committed (CommitBundles) and the GCS told; if one node refused,
the others give theirs back and the group waits for the next node update, like a pending
task.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from thespian.actors import WakeupMessage

from babyray import exceptions, log
from babyray.actors.base import PartActor
from babyray.actors.bundle_placement import place_bundles
from babyray.actors.bundles import group_resources
from babyray.actors.resources import acquire, fits, release
from babyray.actors.scheduling_policy import NodeLoad, Placement, Unschedulable, make_policy
from babyray.ids import TaskID
from babyray.protocol import cluster as cm
from babyray.protocol import gcs as gm
from babyray.protocol import placement as pm
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm
from babyray.session import register_pid
from babyray.task_failure import failed_result
from babyray.util.scheduling_strategies import placement_group_id

LOAD_POLL_SECONDS = 0.2
# Seconds a task waits with no alive node able to ever run it before its owner is told (a
# node that has just joined may not be in the node table yet).
INFEASIBLE_WARN_AFTER = 1.0
PLACED_KEPT = 100_000  # placements remembered for cancels (a task id and an address each)
RESERVE_TIMEOUT = 10.0  # seconds to wait for every node's answer to PrepareBundles


@dataclass
class _Reservation:
    """A group whose bundles are being prepared on ``nodes`` (one per bundle)."""

    request: pm.PlacePlacementGroup
    nodes: list
    waiting: set
    refused: bool = False
    started: float = field(default_factory=time.monotonic)

    def reserved_now(self) -> list[tuple[int, str, dict]]:
        """(index, node, bundle) of the bundles this reservation takes: all of them, or those
        lost with a node when the group is rescheduled (not in ``request.kept``)."""
        kept = self.request.kept or ("",) * len(self.nodes)
        return [
            (index, node, bundle)
            for index, (node, bundle, was) in enumerate(
                zip(self.nodes, self.request.bundles, kept, strict=True)
            )
            if not was
        ]


class GlobalScheduler(PartActor):
    component = "global_scheduler"
    handlers = {
        cm.StartGlobalScheduler: "on_start",
        cm.NodesChanged: "on_nodes_changed",
        cm.Nodes: "on_nodes",
        tm.ForwardTasks: "on_forward",
        tm.SubmitTasks: "on_submit",
        tm.CancelTask: "on_cancel",
        pm.PlacePlacementGroup: "on_place_group",
        pm.ForgetPlacementGroup: "on_forget_group",
        pm.BundlesPrepared: "on_bundles_prepared",
    }
    timers = {"poll_load": "on_poll_load"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nodes: dict[str, NodeLoad] = {}
        self.pending: list[vm.TaskSpec] = []
        self.placement = Placement(make_policy("locality"))
        self.gcs: Any = None
        self.pending_groups: dict[str, pm.PlacePlacementGroup] = {}
        self.reserving: dict[str, _Reservation] = {}
        self.removed_groups: set[str] = set()
        # pending task id -> since when no alive node could ever fit it (pruned with the pending list)
        self.infeasible_since: dict[str, float] = {}
        self.infeasible_told: set[str] = set()  # pending tasks whose owners were told so
        # task id -> the local scheduler it was placed on, the latest PLACED_KEPT: where a
        # cancel goes once the task has left here
        self.placed_on: OrderedDict[TaskID, Any] = OrderedDict()

    def on_start(self, msg: cm.StartGlobalScheduler, sender: Any) -> None:
        log.configure(os.path.join(msg.session_dir, "logs"), "global_scheduler")
        self.log = log.get_logger("global_scheduler")
        register_pid(msg.session_dir, "global_scheduler")
        self.placement = Placement(make_policy(msg.policy))
        self.gcs = msg.gcs
        self.post(msg.gcs, cm.SubscribeNodes())
        self.every(LOAD_POLL_SECONDS, "poll_load")
        self.log.info("global_scheduler_started", policy=msg.policy)
        self.post(sender, cm.Started("global_scheduler", os.getpid()))

    # ---- the node table --------------------------------------------------------------

    def on_nodes_changed(self, msg: cm.NodesChanged, sender: Any) -> None:
        self._update(msg.nodes)

    def on_nodes(self, msg: cm.Nodes, sender: Any) -> None:
        self._update(msg.nodes)

    def _update(self, infos: tuple) -> None:
        self.nodes = {n.node_id: NodeLoad.from_info(n) for n in infos}
        if self.pending_groups or self.reserving:
            self._place_groups()
        if self.pending:
            self._place_pending()

    def on_poll_load(self, msg: WakeupMessage, sender: Any) -> None:
        self.post(self.gcs, cm.GetNodes("gs-load"))

    # ---- placing ---------------------------------------------------------------------

    def on_forward(self, msg: tm.ForwardTasks, sender: Any) -> None:
        self.pending.extend(msg.specs)
        self._place_pending()

    def on_submit(self, msg: tm.SubmitTasks, sender: Any) -> None:
        """From a driver on a host without a node: place like forwarded tasks."""
        self.pending.extend(msg.specs)
        self._place_pending()

    def _place_pending(self) -> None:
        still = []
        placed = []  # (task_id, "placed", fields): the GCS finds tasks lost with a node by these
        for spec in self.pending:
            if placement_group_id(spec.scheduling_strategy) in self.removed_groups:
                self._fail_removed_group(spec)
                continue
            try:
                node = self.placement.choose_node(spec, self.nodes)
            except Unschedulable as exc:
                self.log.warning("task_unschedulable", task_id=spec.task_id, reason=str(exc))
                self._fail(spec, exceptions.RayError(str(exc)))
                continue
            if node is None:
                still.append(spec)
                continue
            node.note_placed(self.placement.policy.task_seconds)
            self.log.info(
                "task_placed", task_id=spec.task_id, node=node.node_id, policy=self.placement.policy.name
            )
            self.post(node.scheduler, tm.SubmitTasks((spec,)))
            self.placed_on[spec.task_id] = node.scheduler
            self.placed_on.move_to_end(spec.task_id)
            if len(self.placed_on) > PLACED_KEPT:
                self.placed_on.popitem(last=False)
            if spec.actor_id is None:
                placed.append(
                    (spec.task_id, "placed", {"placed_node": node.node_id, "owner_address": spec.owner})
                )
        if placed:
            self.post(self.gcs, gm.TaskEvents(tuple(placed)))
        if still:
            self.log.debug("tasks_pending", count=len(still))
        self.pending = still
        self._tell_infeasible()

    def _tell_infeasible(self) -> None:
        """Tell the owner of each pending task that no alive node could ever run (none has
        the resources it asks for in total) once it has waited ``INFEASIBLE_WARN_AFTER``; a
        task in a placement group waits for its group instead, and is left out."""
        now = time.monotonic()
        alive = [n.resources for n in self.nodes.values() if n.alive]
        waiting = {spec.task_id for spec in self.pending}
        for task_id in [t for t in self.infeasible_since if t not in waiting]:
            del self.infeasible_since[task_id]
        self.infeasible_told &= waiting
        for spec in self.pending:
            if spec.task_id in self.infeasible_told or placement_group_id(spec.scheduling_strategy):
                continue
            if not self.nodes or any(fits(total, spec.resources) for total in alive):
                self.infeasible_since.pop(spec.task_id, None)
                continue
            since = self.infeasible_since.setdefault(spec.task_id, now)
            if now - since < INFEASIBLE_WARN_AFTER:
                continue
            self.infeasible_told.add(spec.task_id)
            self.log.warning("task_infeasible", task_id=spec.task_id, resources=spec.resources)
            self.post(
                spec.owner,
                tm.TaskInfeasible(
                    spec.task_id, spec.function_name, dict(spec.resources), spec.actor_creation, tuple(alive)
                ),
            )

    # ---- placement groups -------------------------------------------------------------

    def on_place_group(self, msg: pm.PlacePlacementGroup, sender: Any) -> None:
        if msg.pg_id not in self.reserving:
            self.pending_groups[msg.pg_id] = msg
            self._place_groups()

    def on_forget_group(self, msg: pm.ForgetPlacementGroup, sender: Any) -> None:
        """The group was removed: stop placing it and fail the tasks waiting for it."""
        self.removed_groups.add(msg.pg_id)
        self.pending_groups.pop(msg.pg_id, None)
        reservation = self.reserving.pop(msg.pg_id, None)
        if reservation is not None:
            self._give_back(msg.pg_id, reservation)
        if self.pending:
            self._place_pending()

    def _fail_removed_group(self, spec: vm.TaskSpec) -> None:
        pg_id = placement_group_id(spec.scheduling_strategy)
        self.log.info("task_group_removed", task_id=spec.task_id, pg_id=pg_id)
        if not spec.actor_creation:
            self._fail(
                spec,
                exceptions.TaskPlacementGroupRemoved(
                    f"Task {spec.function_name} ({spec.task_id}) cannot run: its placement group {pg_id} was removed"
                ),
            )

    def _place_groups(self) -> None:
        """Start reserving each pending group whose bundles fit the nodes' free resources
        (less what reservations under way take), oldest first; abandon stuck reservations."""
        now = time.monotonic()
        for pg_id, reservation in list(self.reserving.items()):
            if now - reservation.started > RESERVE_TIMEOUT:
                self.log.warning(
                    "placement_group_reservation_timed_out", pg_id=pg_id, waiting=sorted(reservation.waiting)
                )
                del self.reserving[pg_id]
                self._give_back(pg_id, reservation)
                self.pending_groups[pg_id] = reservation.request
        free = {node_id: dict(n.available) for node_id, n in self.nodes.items() if n.alive}
        for reservation in self.reserving.values():
            for _, node_id, bundle in reservation.reserved_now():
                if node_id in free:
                    acquire(free[node_id], bundle)
        for pg_id, request in list(self.pending_groups.items()):
            nodes = place_bundles(list(request.bundles), request.strategy, free, request.kept)
            if nodes is None:
                continue
            del self.pending_groups[pg_id]
            reservation = _Reservation(request, nodes, set())
            taken = reservation.reserved_now()
            for _, node_id, bundle in taken:
                acquire(free[node_id], bundle)
            reservation.waiting = {node_id for _, node_id, _ in taken}
            self.reserving[pg_id] = reservation
            self.log.info("placement_group_preparing", pg_id=pg_id, nodes=nodes)
            for node_id in reservation.waiting:
                mine = tuple((i, b) for i, n, b in taken if n == node_id)
                self.post(self.nodes[node_id].scheduler, pm.PrepareBundles(pg_id, mine))

    def on_bundles_prepared(self, msg: pm.BundlesPrepared, sender: Any) -> None:
        reservation = self.reserving.get(msg.pg_id)
        if reservation is None or msg.node_id not in reservation.waiting:
            if msg.ok:  # a reservation given up meanwhile: this node must not keep the bundles
                self.post(sender, pm.ReturnBundles(msg.pg_id))
            return
        reservation.waiting.discard(msg.node_id)
        reservation.refused = reservation.refused or not msg.ok
        if reservation.waiting:
            return
        del self.reserving[msg.pg_id]
        if reservation.refused:  # all or nothing: the others give theirs back; tried again later
            self.log.info("placement_group_refused_retrying", pg_id=msg.pg_id)
            self._give_back(msg.pg_id, reservation)
            self.pending_groups[msg.pg_id] = reservation.request
            return
        taken = reservation.reserved_now()
        for node_id in {node_id for _, node_id, _ in taken}:
            self.post(self.nodes[node_id].scheduler, pm.CommitBundles(msg.pg_id))
            # the group's resources, known here before the node's next heartbeat reaches the GCS
            node = self.nodes[node_id]
            mine = {i: b for i, n, b in taken if n == node_id}
            release(node.resources, group_resources(msg.pg_id, mine))
        self.log.info("placement_group_committed", pg_id=msg.pg_id, nodes=reservation.nodes)
        self.post(self.gcs, pm.PlacementGroupPlaced(msg.pg_id, tuple(reservation.nodes)))
        if self.pending:  # tasks waiting for the group, its ready() first
            self._place_pending()

    def _give_back(self, pg_id: str, reservation: _Reservation) -> None:
        for node_id in {node_id for _, node_id, _ in reservation.reserved_now()}:
            node = self.nodes.get(node_id)
            if node is not None:
                self.post(node.scheduler, pm.ReturnBundles(pg_id))

    def _fail(self, spec: vm.TaskSpec, error: BaseException) -> None:
        self.post(spec.owner, tm.TaskResults((failed_result(spec, error),)))

    def on_cancel(self, msg: tm.CancelTask, sender: Any) -> None:
        """Fail a task still pending here; pass the cancel of one placed to its node's scheduler."""
        for spec in self.pending:
            if spec.task_id == msg.task_id:
                self.pending.remove(spec)
                self._fail(spec, exceptions.TaskCancelledError(spec.task_id))
                return
        scheduler = self.placed_on.get(msg.task_id)
        if scheduler is not None:
            self.post(scheduler, msg)

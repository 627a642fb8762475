"""The global scheduler: places tasks that local schedulers (or drivers without a node)
pass up.

It learns the node table from the GCS (NodesChanged, and a GetNodes poll for load) and
places each task with a ``Placement`` (babyray.actors.scheduling_policy): the scheduling
strategy first, then the policy, locality-aware by default or queue-only (selectable for
the benchmark). A task no node can run yet waits here, pending, until a node with the
resources joins, or until it is cancelled.
"""
from __future__ import annotations

import os
from typing import Any

from babyray import exceptions, log
from babyray.actors import messages as m
from babyray.actors.base import PartActor
from babyray.actors.scheduling_policy import NodeLoad, Placement, Unschedulable, make_policy, policy_name
from babyray.session import register_pid
from babyray.task_failure import failed_result

LOAD_POLL_SECONDS = 0.2


class GlobalScheduler(PartActor):
    component = "global_scheduler"
    handlers = {
        m.StartGlobalScheduler: "on_start",
        m.NodesChanged: "on_nodes_changed",
        m.Nodes: "on_nodes",
        m.ForwardTasks: "on_forward",
        m.SubmitTasks: "on_submit",
        m.CancelTask: "on_cancel",
    }
    timers = {"poll_load": "on_poll_load"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nodes: dict[str, NodeLoad] = {}
        self.pending: list[m.TaskSpec] = []
        self.placement = Placement(make_policy("locality"))
        self.gcs: Any = None

    def on_start(self, msg: m.StartGlobalScheduler, sender: Any) -> None:
        log.configure(os.path.join(msg.session_dir, "logs"), "global_scheduler")
        self.log = log.get_logger("global_scheduler")
        register_pid(msg.session_dir, "global_scheduler")
        policy = policy_name(msg.policy)
        self.placement = Placement(make_policy(policy))
        self.gcs = msg.gcs
        self.post(msg.gcs, m.SubscribeNodes())
        self.every(LOAD_POLL_SECONDS, "poll_load")
        self.log.info("global_scheduler_started", policy=policy)
        self.post(sender, m.Started("global_scheduler", os.getpid()))

    # ---- the node table --------------------------------------------------------------

    def on_nodes_changed(self, msg: m.NodesChanged, sender: Any) -> None:
        self._update(msg.nodes)

    def on_nodes(self, msg: m.Nodes, sender: Any) -> None:
        self._update(msg.nodes)

    def _update(self, infos: tuple) -> None:
        self.nodes = {n.node_id: NodeLoad.from_info(n) for n in infos}
        if self.pending:
            self._place_pending()

    def on_poll_load(self, msg: Any, sender: Any) -> None:
        self.post(self.gcs, m.GetNodes("gs-load"))
        self.every(LOAD_POLL_SECONDS, "poll_load")

    # ---- placing ---------------------------------------------------------------------

    def on_forward(self, msg: m.ForwardTasks, sender: Any) -> None:
        self.pending.extend(msg.specs)
        self._place_pending()

    def on_submit(self, msg: m.SubmitTasks, sender: Any) -> None:
        """From a driver on a host without a node: place like forwarded tasks."""
        self.pending.extend(msg.specs)
        self._place_pending()

    def _place_pending(self) -> None:
        still = []
        placed = []  # (task_id, "placed", fields): the GCS finds tasks lost with a node by these
        for spec in self.pending:
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
            self.log.info("task_placed", task_id=spec.task_id, node=node.node_id,
                          policy=self.placement.policy.name)
            self.post(node.scheduler, m.SubmitTasks((spec,)))
            if spec.actor_id is None:
                placed.append((spec.task_id, "placed", {"placed_node": node.node_id, "owner_address": spec.owner}))
        if placed:
            self.post(self.gcs, m.TaskEvents(tuple(placed)))
        if still:
            self.log.debug("tasks_pending_infeasible", count=len(still))
        self.pending = still

    def _fail(self, spec: m.TaskSpec, error: BaseException) -> None:
        self.post(spec.owner, m.TaskResults((failed_result(spec, error),)))

    def on_cancel(self, msg: m.CancelTask, sender: Any) -> None:
        for spec in self.pending:
            if spec.task_id == msg.task_id:
                self.pending.remove(spec)
                self._fail(spec, exceptions.TaskCancelledError(spec.task_id))
                return



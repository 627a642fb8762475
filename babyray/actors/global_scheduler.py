"""The global scheduler: places tasks that a local scheduler passed up.

It learns the node table from the GCS (NodesChanged). A task no node can ever run waits
here, pending, until a node with the resources joins, or until it is cancelled.
"""
from __future__ import annotations

import os
from typing import Any

from babyray import exceptions, log, serialization
from babyray.actors import messages as m
from babyray.actors.base import PartActor
from babyray.actors.resources import fits
from babyray.session import register_pid


class GlobalScheduler(PartActor):
    component = "global_scheduler"
    handlers = {
        m.StartGlobalScheduler: "on_start",
        m.NodesChanged: "on_nodes_changed",
        m.ForwardTasks: "on_forward",
        m.CancelTask: "on_cancel",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nodes: dict[str, m.NodeInfo] = {}
        self.pending: list[m.TaskSpec] = []

    def on_start(self, msg: m.StartGlobalScheduler, sender: Any) -> None:
        log.configure(os.path.join(msg.session_dir, "logs"), "global_scheduler")
        self.log = log.get_logger("global_scheduler")
        register_pid(msg.session_dir, "global_scheduler")
        self.post(msg.gcs, m.SubscribeNodes())
        self.log.info("global_scheduler_started")
        self.post(sender, m.Started("global_scheduler", os.getpid()))

    def on_nodes_changed(self, msg: m.NodesChanged, sender: Any) -> None:
        self.nodes = {n.node_id: n for n in msg.nodes}
        self._place_pending()

    def on_forward(self, msg: m.ForwardTasks, sender: Any) -> None:
        self.pending.extend(msg.specs)
        self._place_pending()

    def _place_pending(self) -> None:
        still = []
        for spec in self.pending:
            node = self._choose(spec)
            if node is None:
                still.append(spec)
            else:
                self.log.info("task_placed", task_id=spec.task_id, node=node.node_id)
                self.post(node.scheduler, m.SubmitTasks((spec,)))
        if len(still) != len(self.pending) or still:
            self.log.debug("tasks_pending_infeasible", count=len(still))
        self.pending = still

    def _choose(self, spec: m.TaskSpec) -> m.NodeInfo | None:
        candidates = [n for n in self.nodes.values() if n.alive and fits(n.resources, spec.resources)]
        if not candidates:
            return None
        return min(candidates, key=lambda n: n.queue_length)

    def on_cancel(self, msg: m.CancelTask, sender: Any) -> None:
        for spec in self.pending:
            if spec.task_id == msg.task_id:
                self.pending.remove(spec)
                blob = serialization.dumps(exceptions.TaskCancelledError(spec.task_id))
                result = m.TaskResult(spec.task_id, tuple((o, m.ErrorValue(blob)) for o in spec.return_ids))
                self.post(spec.owner, m.TaskResults((result,)))
                return

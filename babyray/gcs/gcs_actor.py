"""The GCS actor: the cluster's metadata (tables), node liveness, function registry.

Runs on the head node. Other parts reach it by address; it is never on a task's critical
path except for the first use of a function on a worker.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

from babyray import config, log
from babyray.actors import messages as m
from babyray.actors.base import PartActor
from babyray.gcs.tables import GcsTables
from babyray.ids import new_job_id
from babyray.session import kill_session_processes


class GcsActor(PartActor):
    component = "gcs"
    handlers = {
        m.StartGcs: "on_start",
        m.RegisterFunction: "on_register_function",
        m.GetFunction: "on_get_function",
        m.RegisterNode: "on_register_node",
        m.Heartbeat: "on_heartbeat",
        m.GetNodes: "on_get_nodes",
        m.RegisterDriver: "on_register_driver",
        m.TaskEvents: "on_task_events",
        m.ObjectLocations: "on_object_locations",
        m.WhoAmI: "on_who_am_i",
        m.SubscribeNodes: "on_subscribe_nodes",
    }
    timers = {"liveness": "on_liveness_check"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tables = GcsTables()
        self.session_dir = ""
        self.watch_pid = 0
        self.function_waiters: dict[str, list[tuple[Any, str]]] = {}
        self.node_seen: dict[str, float] = {}
        self.node_timeout = config.get("node_timeout")
        self.subscribers: list[Any] = []  # global schedulers, told of node changes

    def on_start(self, msg: m.StartGcs, sender: Any) -> None:
        self.session_dir = msg.session_dir
        log.configure(os.path.join(msg.session_dir, "logs"), "gcs")
        self.log = log.get_logger("gcs")
        self.watch_pid = msg.watch_pid
        self.node_timeout = float(msg.config.get("node_timeout", self.node_timeout))
        self.every(0.5, "liveness")
        self.log.info("gcs_started", watch_pid=self.watch_pid)
        self.post(sender, m.Started("gcs", os.getpid()))

    def on_who_am_i(self, msg: m.WhoAmI, sender: Any) -> None:
        self.reply(msg, sender, m.YouAre(msg.req_id, sender))

    # ---- functions ---------------------------------------------------------------------

    def on_register_function(self, msg: m.RegisterFunction, sender: Any) -> None:
        if self.tables.functions.get(msg.function_id) is None:
            self.tables.functions.put(msg.function_id, {"name": msg.name, "blob": msg.blob})
            self.log.info("function_registered", function_id=msg.function_id, name=msg.name)
        for waiter, req_id in self.function_waiters.pop(msg.function_id, []):
            self.post(waiter, m.FunctionBlob(req_id, msg.function_id, msg.blob))

    def on_get_function(self, msg: m.GetFunction, sender: Any) -> None:
        record = self.tables.functions.get(msg.function_id)
        if record is None:  # registration may still be on its way from the driver
            self.function_waiters.setdefault(msg.function_id, []).append((msg.reply_to or sender, msg.req_id))
        else:
            self.reply(msg, sender, m.FunctionBlob(msg.req_id, msg.function_id, record["blob"]))

    # ---- nodes -------------------------------------------------------------------------

    def on_register_node(self, msg: m.RegisterNode, sender: Any) -> None:
        self.tables.nodes.put(msg.node_id, {
            "node_id": msg.node_id, "address": msg.address, "alive": True,
            "resources": dict(msg.resources), "available": dict(msg.resources),
            "queue_length": 0, "scheduler": msg.scheduler, "store": msg.store,
            "registered_at": time.time(),
        })
        self.node_seen[msg.node_id] = time.monotonic()
        self.log.info("node_registered", node=msg.node_id, address=msg.address, resources=msg.resources)
        self._publish_nodes()

    def on_heartbeat(self, msg: m.Heartbeat, sender: Any) -> None:
        record = self.tables.nodes.get(msg.node_id)
        if record is None:
            return
        self.node_seen[msg.node_id] = time.monotonic()
        record.update(available=dict(msg.available), queue_length=msg.queue_length,
                      num_workers=msg.num_workers)
        if not record["alive"]:
            record["alive"] = True
            self.log.info("node_alive_again", node=msg.node_id)
            self._publish_nodes()

    def on_liveness_check(self, msg: Any, sender: Any) -> None:
        if self.watch_pid and not _pid_alive(self.watch_pid):
            self.log.warning("driver_gone_stopping_private_cluster", pid=self.watch_pid)
            kill_session_processes(self.session_dir, exclude=(os.getpid(),))
            os.kill(os.getpid(), signal.SIGKILL)
        now = time.monotonic()
        changed = False
        for node_id, record in self.tables.nodes.items():
            if record["alive"] and now - self.node_seen.get(node_id, now) > self.node_timeout:
                record["alive"] = False
                changed = True
                self.log.warning("node_dead", node=node_id, silent_for=round(now - self.node_seen[node_id], 2))
        if changed:
            self._publish_nodes()
        self.every(0.5, "liveness")

    def _node_infos(self) -> tuple:
        return tuple(
            m.NodeInfo(r["node_id"], r["address"], r["alive"], r["resources"], r["available"],
                       r["queue_length"], r["scheduler"], r["store"])
            for _, r in self.tables.nodes.items())

    def _publish_nodes(self) -> None:
        infos = self._node_infos()
        for sub in self.subscribers:
            self.post(sub, m.NodesChanged(infos))

    def on_get_nodes(self, msg: m.GetNodes, sender: Any) -> None:
        self.reply(msg, sender, m.Nodes(msg.req_id, self._node_infos()))

    def on_subscribe_nodes(self, msg: m.SubscribeNodes, sender: Any) -> None:
        if sender not in self.subscribers:
            self.subscribers.append(sender)
        self.post(sender, m.NodesChanged(self._node_infos()))

    # ---- drivers, lineage, objects -----------------------------------------------------

    def on_register_driver(self, msg: m.RegisterDriver, sender: Any) -> None:
        job_id = new_job_id()
        self.log.info("driver_registered", job_id=job_id, pid=msg.pid)
        self.post(sender, m.DriverRegistered(msg.req_id, job_id, sender, self._node_infos()))

    def on_task_events(self, msg: m.TaskEvents, sender: Any) -> None:
        for task_id, state, fields in msg.events:
            self.tables.tasks.update(task_id, state=state, **fields)

    def on_object_locations(self, msg: m.ObjectLocations, sender: Any) -> None:
        for object_id, size in msg.added:
            record = self.tables.objects.get(object_id) or {"locations": set(), "size": size}
            record["locations"].add(msg.node_id)
            record["size"] = size
            self.tables.objects.put(object_id, record)
        for object_id in msg.removed:
            record = self.tables.objects.get(object_id)
            if record is not None:
                record["locations"].discard(msg.node_id)
                if not record["locations"]:
                    self.tables.objects.delete(object_id)

    def on_exit(self, msg: Any, sender: Any) -> None:
        self.log.info("gcs_stopping")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

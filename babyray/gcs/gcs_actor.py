"""The GCS actor: the cluster's metadata (tables), node liveness, function registry.

Runs on the head node. Other parts reach it by address; it is never on a task's critical
path except for the first use of a function on a worker. Every table is written through to
the store (``StoredTable``: SQLite in the session directory, or ``gcs_url``) by a background
writer; a flush pass evicts durable entries of finished work (``FlushPolicy``) and a miss
faults them back. On start the GCS recovers nodes, actors and functions from the store;
tasks and objects are read back on demand. What callers learn of an actor (its registration,
its state) is sent once the actor's record is durable (``DurableGate``), so a restarted GCS
knows every actor its callers know.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

from babyray import config, log
from babyray.protocol import actors as am
from babyray.protocol import cluster as cm
from babyray.protocol import gcs as gm
from babyray.protocol import objects as om
from babyray.protocol import placement as pm
from babyray.protocol import state as sm
from babyray.protocol import tasks as tm
from babyray.actors.base import PartActor
from babyray.actors.batching import address_key
from babyray.gcs.flushing import FlushPolicy
from babyray.gcs.reader import StoreReader
from babyray.gcs.store import GcsSchemaVersionError, GcsStore, redact_url
from babyray.gcs.actor_directory import ActorDirectory
from babyray.gcs.durable_gate import DurableGate, Outgoing
from babyray.gcs.placement_groups import PlacementGroupDirectory, actors_in_group, bundle_nodes
from babyray.util.scheduling_strategies import placement_group_id
from babyray.gcs.tables import GcsTables, StoredTable
from babyray.gcs.task_states import FINAL, merge_task_event
from babyray.gcs.writer import StoreWriter
from babyray.ids import new_job_id
from babyray.procfs import is_running
from babyray.session import kill_admin_tree, kill_session_processes, register_pid

_WRITER_CLOSE_TIMEOUT = 3.0  # seconds a stopping GCS waits for the store to take pending writes


class GcsActor(PartActor):
    component = "gcs"
    handlers = {
        cm.StartGcs: "on_start",
        gm.RegisterFunction: "on_register_function",
        gm.GetFunction: "on_get_function",
        cm.RegisterNode: "on_register_node",
        cm.Heartbeat: "on_heartbeat",
        cm.GetNodes: "on_get_nodes",
        cm.RegisterDriver: "on_register_driver",
        cm.UnregisterDriver: "on_unregister_driver",
        sm.ListDrivers: "on_list_drivers",
        gm.TaskEvents: "on_task_events",
        om.ObjectLocations: "on_object_locations",
        cm.SubscribeNodes: "on_subscribe_nodes",
        gm.GetTableEntries: "on_get_table_entries",
        gm.ListTable: "on_list_table",
        gm.UpdateTableEntries: "on_update_table_entries",
        gm.GetGcsStats: "on_get_stats",
        gm.FlushGcs: "on_flush_gcs",
        gm.ActorsDurable: "on_actors_durable",
        am.RegisterActor: "on_register_actor",
        am.ActorStarted: "on_actor_started",
        am.ActorInitFailed: "on_actor_init_failed",
        am.ActorWorkerDied: "on_actor_worker_died",
        am.SubscribeActor: "on_subscribe_actor",
        am.KillActor: "on_kill_actor",
        am.GetNamedActor: "on_get_named_actor",
        am.ListNamedActors: "on_list_named_actors",
        pm.CreatePlacementGroup: "on_create_placement_group",
        pm.RemovePlacementGroup: "on_remove_placement_group",
        pm.GetPlacementGroup: "on_get_placement_group",
        pm.PlacementGroupPlaced: "on_placement_group_placed",
    }
    timers = {"liveness": "on_liveness_check", "flush": "on_flush_timer"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tables = GcsTables()
        self.session_dir = ""
        self.watch_pid = 0
        self.function_waiters: dict[str, list[tuple[Any, str]]] = {}
        self.node_seen: dict[str, float] = {}
        # Nodes alive before a restart, told of it, that have not registered again: node -> by when.
        self.awaited_nodes: dict[str, float] = {}
        self.node_timeout = config.Settings().node_timeout
        self.subscribers: list[Any] = []  # global schedulers, told of node changes
        self.policy = FlushPolicy(enabled=False)
        self.writer: StoreWriter | None = None
        self.reader: StoreReader | None = None
        self.actor_gate = DurableGate(None, "actors")  # actor messages held until their record is durable
        self.store_url = ""
        self.recovered = False
        self.global_scheduler: Any = None
        self._actor_directory: ActorDirectory | None = None
        self._placement_groups: PlacementGroupDirectory | None = None
        self.placements: dict[str, tuple[str, Any]] = {}  # task id -> (node, owner) until it ends
        self.drivers: dict[str, dict] = {}  # job id -> the connected driver (memory only)
        self.driver_seen: dict[str, float] = {}  # job id -> when its watch last pinged (monotonic)

    def on_start(self, msg: cm.StartGcs, sender: Any) -> None:
        self.session_dir = msg.session_dir
        log.configure(os.path.join(msg.session_dir, "logs"), "gcs")
        self.log = log.get_logger("gcs")
        self.watch_pid = msg.watch_pid
        register_pid(msg.session_dir, "gcs")
        self.node_timeout = config.Settings(msg.config).node_timeout
        self.enable_thread_posts()  # the store writer tells of durable actor records
        try:
            self._open_store(msg.session_dir, msg.config)
        except (ValueError, GcsSchemaVersionError) as exc:  # bad input: init() reports it
            self.log.error("gcs_store_rejected", error=str(exc))
            self.post(sender, f"GCS store error: {exc}")
            return
        self.every(0.5, "liveness")
        self.every(self.policy.period, "flush")
        self.log.info("gcs_started", watch_pid=self.watch_pid, url=self.store_url,
                      flushing=self.policy.enabled, recovered=self.recovered)
        self.post(sender, cm.Started("gcs", os.getpid()))

    # ---- store, recovery, flushing -----------------------------------------------------

    def _open_store(self, session_dir: str, settings: dict) -> None:
        """Make the writer and reader, and recover the tables if the store is reachable.

        Raises:
            ValueError: the URL names an unsupported backend.
            GcsSchemaVersionError: the store was written by another schema version.
        """
        resolved = config.Settings(settings)
        url = resolved.gcs_url or f"sqlite:///{os.path.join(session_dir, 'gcs.sqlite')}"
        prefix = resolved.gcs_table_prefix
        self.store_url = redact_url(url)
        self.policy = FlushPolicy.from_settings(resolved)

        def open_store() -> GcsStore:
            return GcsStore(url, prefix=prefix)

        self.writer = StoreWriter(open_store, on_durable=self._on_store_durable)
        self.actor_gate = DurableGate(self.writer, "actors")
        self.reader = StoreReader(open_store, self.writer.is_healthy, self.store_url)
        self.tables = GcsTables(self.writer, self.reader)
        if self.reader.open():
            self._recover()
        else:
            self.log.error("gcs_store_unreachable_at_start", url=self.store_url,
                           detail="serving from memory; retrying with backoff")

    def _recover(self) -> None:
        """Load nodes, actors, functions and placement groups from the store; tasks and objects
    fault back."""
        loaded: dict[str, int] = {}
        for name in ("nodes", "actors", "functions", "placement_groups"):
            table = self.tables.table(name)
            items = table.scan() if isinstance(table, StoredTable) else []
            if items is None:
                return  # the store went away again: retried by the flush timer
            loaded[name] = table.load(items)
        for node_id, record in self.tables.nodes.items():
            if record.get("alive"):  # known from before the restart: alive again once it registers
                record["alive"], record["alive_before_restart"] = False, True
                self.tables.nodes.put(node_id, record)
        self.recovered = True
        self.log.info("gcs_tables_recovered", url=self.store_url, **loaded)

    def on_flush_timer(self, msg: Any, sender: Any) -> None:
        if not self.recovered and self.reader is not None and self.reader.available():
            self._recover()
        if self.function_waiters:
            self._retry_function_waiters()
        self._flush_pass()

    def _flush_pass(self) -> int:
        if not self.policy.enabled:
            return 0
        return sum(t.evict(self.policy) for t in self.tables.all() if isinstance(t, StoredTable))

    def _on_store_durable(self, keys: list[tuple[str, str]]) -> None:
        """On the writer thread: wake the GCS to send what waited for actor records."""
        if any(table == "actors" for table, _ in keys):
            self.post_from_thread(self.myAddress, gm.ActorsDurable())

    def on_actors_durable(self, msg: gm.ActorsDurable, sender: Any) -> None:
        self._post_all(self.actor_gate.release())

    def _retry_function_waiters(self) -> None:
        """Waiters of functions evicted while the store was unreadable get them once it is back."""
        found = self.tables.functions.get_many(list(self.function_waiters))
        for function_id, record in found.items():
            for waiter, req_id in self.function_waiters.pop(function_id, []):
                self.post(waiter, gm.FunctionBlob(req_id, function_id, record["blob"]))

    # ---- table queries -----------------------------------------------------------------

    def on_get_table_entries(self, msg: gm.GetTableEntries, sender: Any) -> None:
        try:
            found = self.tables.table(msg.table).get_many(msg.keys)
            entries = tuple((key, found.get(key)) for key in msg.keys)
            self.reply(msg, sender, gm.TableEntries(msg.req_id, msg.table, entries))
        except Exception as exc:  # answer the waiter instead of raising into Thespian
            self.reply(msg, sender, gm.TableEntries(msg.req_id, msg.table, (), f"{type(exc).__name__}: {exc}"))

    def on_list_table(self, msg: gm.ListTable, sender: Any) -> None:
        try:
            table = self.tables.table(msg.table)
            if isinstance(table, StoredTable):
                items = table.scan(msg.where, msg.limit)
                if items is None:
                    raise ConnectionError(f"GCS store {self.store_url} is unavailable")
            else:
                items = [(k, r) for k, r in table.items()
                         if all(r.get(f) == v for f, v in (msg.where or {}).items())][: msg.limit]
            self.reply(msg, sender, gm.TableEntries(msg.req_id, msg.table, tuple(items)))
        except Exception as exc:
            self.reply(msg, sender, gm.TableEntries(msg.req_id, msg.table, (), f"{type(exc).__name__}: {exc}"))

    def on_update_table_entries(self, msg: gm.UpdateTableEntries, sender: Any) -> None:
        table = self.tables.table(msg.table)
        for key, fields in msg.updates:
            table.update(key, **fields)

    def on_get_stats(self, msg: gm.GetGcsStats, sender: Any) -> None:
        stored = [t for t in self.tables.all() if isinstance(t, StoredTable)]
        self.reply(msg, sender, gm.GcsStats(
            msg.req_id, os.getpid(), self.store_url,
            self.writer.is_healthy() if self.writer else False,
            self.writer.pending_count() if self.writer else 0,
            {t.name: len(t) for t in self.tables.all()},
            {t.name: t.evicted for t in stored}, {t.name: t.faults for t in stored},
            self.recovered, self.policy.enabled))

    def on_flush_gcs(self, msg: gm.FlushGcs, sender: Any) -> None:
        durable = self.writer.flush(msg.timeout) if self.writer else False
        self.reply(msg, sender, gm.GcsFlushed(msg.req_id, durable, self._flush_pass()))

    # ---- functions ---------------------------------------------------------------------

    def on_register_function(self, msg: gm.RegisterFunction, sender: Any) -> None:
        if self.tables.functions.get(msg.function_id) is None:
            self.tables.functions.put(msg.function_id, {"name": msg.name, "blob": msg.blob})
            self.log.info("function_registered", function_id=msg.function_id, name=msg.name)
        for waiter, req_id in self.function_waiters.pop(msg.function_id, []):
            self.post(waiter, gm.FunctionBlob(req_id, msg.function_id, msg.blob))

    def on_get_function(self, msg: gm.GetFunction, sender: Any) -> None:
        record = self.tables.functions.get(msg.function_id)  # faults back an evicted function
        if record is None:  # registration may still be on its way from the driver
            self.function_waiters.setdefault(msg.function_id, []).append((msg.reply_to or sender, msg.req_id))
        else:
            self.reply(msg, sender, gm.FunctionBlob(msg.req_id, msg.function_id, record["blob"]))

    # ---- nodes -------------------------------------------------------------------------

    def on_register_node(self, msg: cm.RegisterNode, sender: Any) -> None:
        self.tables.nodes.put(msg.node_id, {
            "node_id": msg.node_id, "address": msg.address, "alive": True,
            "resources": dict(msg.resources), "available": dict(msg.resources),
            "queue_length": 0, "scheduler": msg.scheduler, "store": msg.store,
            "registered_at": time.time(),
        })
        self.node_seen[msg.node_id] = time.monotonic()
        self.awaited_nodes.pop(msg.node_id, None)
        self.log.info("node_registered", node=msg.node_id, address=msg.address, resources=msg.resources)
        self._publish_nodes()

    def on_heartbeat(self, msg: cm.Heartbeat, sender: Any) -> None:
        record = self.tables.nodes.get(msg.node_id)
        if record is None:
            return
        self.node_seen[msg.node_id] = time.monotonic()
        record.update(available=dict(msg.available), queue_length=msg.queue_length,
                      num_workers=msg.num_workers)
        if msg.resources is not None:  # the node's total changed (placement group bundles)
            record["resources"] = dict(msg.resources)
        revived = not record["alive"]
        record["alive"] = True
        self.tables.nodes.put(msg.node_id, record)
        if revived:
            self.log.info("node_alive_again", node=msg.node_id)
            self._publish_nodes()

    def on_liveness_check(self, msg: Any, sender: Any) -> None:
        if self.watch_pid and not is_running(self.watch_pid):
            self.log.warning("driver_gone_stopping_private_cluster", pid=self.watch_pid)
            self._close_store()
            kill_session_processes(self.session_dir, exclude=(os.getpid(),))
            kill_admin_tree(os.getppid())  # the private admin and its logger outlive the driver
            os.kill(os.getpid(), signal.SIGKILL)
        self._forget_gone_drivers()
        self._post_all(self.actor_gate.release())  # held while the store went unhealthy
        now = time.monotonic()
        changed = False
        dead: list[str] = []
        for node_id, record in self.tables.nodes.items():
            if record["alive"] and now - self.node_seen.get(node_id, now) > self.node_timeout:
                record["alive"] = False
                self.tables.nodes.put(node_id, record)
                changed = True
                self.log.warning("node_dead", node=node_id, silent_for=round(now - self.node_seen[node_id], 2))
                dead.append(node_id)
        for node_id, by in list(self.awaited_nodes.items()):
            if now > by:  # alive before the head restarted, and not back: it died meanwhile
                del self.awaited_nodes[node_id]
                self.log.warning("node_dead", node=node_id, reason="not registered again after the GCS restart")
                dead.append(node_id)
        if changed:
            self._publish_nodes()  # first, so the global scheduler does not place restarts there
        for node_id in dead:
            self._tell_owners_of_lost_tasks(node_id)
            for actor_id in self.actor_directory.actors_on(node_id):
                self.on_actor_worker_died(am.ActorWorkerDied(actor_id, node_id, f"node {node_id} died"), None)

    def _tell_owners_of_lost_tasks(self, node_id: str) -> None:
        """Send each owner the ids of its unfinished tasks placed or running on the dead node."""
        by_owner: dict[Any, list[str]] = {}
        owners: dict[Any, Any] = {}  # ActorAddress is unhashable: key by address_key

        def add(owner: Any, task_id: str) -> None:
            key = address_key(owner)
            owners.setdefault(key, owner)
            by_owner.setdefault(key, []).append(task_id)

        for task_id, (placed_node, owner) in list(self.placements.items()):
            if placed_node == node_id:
                del self.placements[task_id]
                add(owner, task_id)
        for task_id, record in self.tables.tasks.items():
            if record.get("state") in FINAL or record.get("actor_id"):
                continue
            owner = getattr(record.get("spec"), "owner", None)
            if record.get("node_id") == node_id and owner is not None:
                add(owner, task_id)
        for key, task_ids in by_owner.items():
            task_ids = list(dict.fromkeys(task_ids))
            self.log.warning("tasks_lost_with_node", node=node_id, count=len(task_ids), task_ids=task_ids[:20])
            self.post(owners[key], tm.TasksLost(node_id, tuple(task_ids)))

    def _announce_restart(self, global_scheduler: Any) -> None:
        """Tell the nodes recovered from the store where the GCS and global scheduler are now.

        A restarted head's parts are new processes with new addresses; the members still send
        to the old ones. Each local scheduler re-registers (and is alive again) on this message.
        """
        for node_id, record in self.tables.nodes.items():
            if record.get("scheduler") is not None:
                self.log.info("gcs_restart_announced", node=node_id, address=record.get("address"))
                self.post(record["scheduler"], cm.GcsRestarted(self.myAddress, global_scheduler))
            if record.get("alive_before_restart"):
                self.awaited_nodes[node_id] = time.monotonic() + self.node_timeout

    def _node_infos(self) -> tuple:
        return tuple(
            cm.NodeInfo(r["node_id"], r["address"], r["alive"], r["resources"], r["available"],
                       r["queue_length"], r["scheduler"], r["store"])
            for _, r in self.tables.nodes.items())

    def _publish_nodes(self) -> None:
        infos = self._node_infos()
        for sub in self.subscribers:
            self.post(sub, cm.NodesChanged(infos))

    def on_get_nodes(self, msg: cm.GetNodes, sender: Any) -> None:
        if msg.job_id in self.drivers:
            self.driver_seen[msg.job_id] = time.monotonic()
        self.reply(msg, sender, cm.Nodes(msg.req_id, self._node_infos()))

    def on_subscribe_nodes(self, msg: cm.SubscribeNodes, sender: Any) -> None:
        if self.recovered and self.global_scheduler is None:
            self._announce_restart(sender)
        self.global_scheduler = sender
        if sender not in self.subscribers:
            self.subscribers.append(sender)
        self.post(sender, cm.NodesChanged(self._node_infos()))
        for record in self.placement_groups.pending():  # recovered from the store, or none
            self.post(sender, pm.PlacePlacementGroup(record["placement_group_id"], tuple(record["bundles"]),
                                                     record["strategy"]))
        for pg_id in self.placement_groups.removed():  # so tasks still sent to them fail
            self.post(sender, pm.ForgetPlacementGroup(pg_id))

    # ---- actors ------------------------------------------------------------------------

    @property
    def actor_directory(self) -> ActorDirectory:
        if self._actor_directory is None or self._actor_directory.table is not self.tables.actors:
            self._actor_directory = ActorDirectory(self.tables.actors)
        return self._actor_directory

    def _post_all(self, outgoing: Outgoing) -> None:
        for dest, message in outgoing:
            self.post(dest, message)

    def _post_actor(self, actor_id: str, outgoing: Outgoing) -> None:
        """Send news of an actor once its record is durable."""
        self._post_all(self.actor_gate.post(actor_id, outgoing))

    def on_register_actor(self, msg: am.RegisterActor, sender: Any) -> None:
        error = self.actor_directory.register(msg)
        self._post_actor(msg.spec.actor_id, [(msg.reply_to or sender, am.ActorRegistered(msg.req_id, error))])
        if error is None:
            self.log.info("actor_registered", actor_id=msg.spec.actor_id, name=msg.info.name,
                          class_name=msg.info.class_name)
            pg_id = placement_group_id(msg.spec.scheduling_strategy)
            if pg_id is not None and self.placement_groups.is_removed(pg_id):
                self._post_all(self.actor_directory.group_removed(msg.spec.actor_id, pg_id))
                return
            self.post(self.global_scheduler, tm.ForwardTasks("gcs", (msg.spec,)))

    def on_actor_started(self, msg: am.ActorStarted, sender: Any) -> None:
        node = self.tables.nodes.get(msg.node_id) or {}
        self.log.info("actor_alive", actor_id=msg.actor_id, node=msg.node_id, worker_id=msg.worker_id)
        self._post_actor(msg.actor_id, self.actor_directory.started(msg, node.get("scheduler")))

    def on_actor_init_failed(self, msg: am.ActorInitFailed, sender: Any) -> None:
        self.log.warning("actor_init_failed", actor_id=msg.actor_id)
        self._post_actor(msg.actor_id, self.actor_directory.init_failed(msg))

    def on_actor_worker_died(self, msg: am.ActorWorkerDied, sender: Any) -> None:
        outgoing, restart_spec = self.actor_directory.worker_died(msg)
        self._post_actor(msg.actor_id, outgoing)
        if restart_spec is not None:
            self.log.warning("actor_restarting", actor_id=msg.actor_id, reason=msg.reason)
            self.post(self.global_scheduler, tm.ForwardTasks("gcs", (restart_spec,)))
        else:
            self.log.warning("actor_dead", actor_id=msg.actor_id, reason=msg.reason)

    def on_subscribe_actor(self, msg: am.SubscribeActor, sender: Any) -> None:
        self._post_actor(msg.actor_id, self.actor_directory.subscribe(msg.actor_id, msg.reply_to or sender))

    def on_kill_actor(self, msg: am.KillActor, sender: Any) -> None:
        self.log.info("actor_kill_requested", actor_id=msg.actor_id, no_restart=msg.no_restart)
        self._post_actor(msg.actor_id, self.actor_directory.kill(msg))

    def on_get_named_actor(self, msg: am.GetNamedActor, sender: Any) -> None:
        self.reply(msg, sender, am.NamedActor(msg.req_id, self.actor_directory.named(msg.name)))

    def on_list_named_actors(self, msg: am.ListNamedActors, sender: Any) -> None:
        self.reply(msg, sender, am.NamedActorList(msg.req_id, self.actor_directory.names()))

    # ---- placement groups ----------------------------------------------------------------

    @property
    def placement_groups(self) -> PlacementGroupDirectory:
        if self._placement_groups is None or self._placement_groups.table is not self.tables.placement_groups:
            self._placement_groups = PlacementGroupDirectory(self.tables.placement_groups)
        return self._placement_groups

    def on_create_placement_group(self, msg: pm.CreatePlacementGroup, sender: Any) -> None:
        error = self.placement_groups.create(msg)
        self.reply(msg, sender, pm.PlacementGroupReply(msg.req_id, error=error))
        if error is None:
            self.log.info("placement_group_created", pg_id=msg.pg_id, name=msg.name, strategy=msg.strategy,
                          bundles=msg.bundles)
            self.post(self.global_scheduler, pm.PlacePlacementGroup(msg.pg_id, msg.bundles, msg.strategy))

    def on_placement_group_placed(self, msg: pm.PlacementGroupPlaced, sender: Any) -> None:
        if self.placement_groups.placed(msg):
            self.log.info("placement_group_placed", pg_id=msg.pg_id, nodes=msg.nodes)
        else:  # removed while its bundles were being reserved
            self._return_bundles(msg.pg_id, set(msg.nodes))

    def on_remove_placement_group(self, msg: pm.RemovePlacementGroup, sender: Any) -> None:
        self._remove_placement_group(msg.pg_id, "removed")
        self.reply(msg, sender, pm.PlacementGroupReply(msg.req_id, self.placement_groups.get(msg.pg_id)))

    def _remove_placement_group(self, pg_id: str, why: str) -> None:
        """Kill the group's actors (no restart), stop placing it and free its bundles."""
        record = self.placement_groups.remove(pg_id)
        if record is None:
            return
        actors = actors_in_group(self.tables.actors, pg_id)
        self.log.info("placement_group_removed", pg_id=pg_id, state_was=record["state"], why=why, actors=actors)
        for actor_id in actors:
            self._post_actor(actor_id, self.actor_directory.group_removed(actor_id, pg_id))
        self.post(self.global_scheduler, pm.ForgetPlacementGroup(pg_id))
        self._return_bundles(pg_id, bundle_nodes(record))

    def _return_bundles(self, pg_id: str, node_ids: set[str]) -> None:
        for node_id in node_ids:
            node = self.tables.nodes.get(node_id)
            if node is not None and node.get("scheduler") is not None:
                self.post(node["scheduler"], pm.ReturnBundles(pg_id))

    def on_get_placement_group(self, msg: pm.GetPlacementGroup, sender: Any) -> None:
        record = self.placement_groups.named(msg.name) if msg.name else self.placement_groups.get(msg.pg_id)
        self.reply(msg, sender, pm.PlacementGroupReply(msg.req_id, record))

    def _remove_placement_groups_of(self, job_id: str) -> None:
        """A driver ended: its placement groups that are not detached go with it."""
        for pg_id in self.placement_groups.owned_by_job(job_id):
            self._remove_placement_group(pg_id, f"job {job_id} ended")

    # ---- drivers, lineage, objects -----------------------------------------------------

    def on_register_driver(self, msg: cm.RegisterDriver, sender: Any) -> None:
        job_id = msg.job_id or new_job_id()
        ip = _host_of(sender)
        self.drivers[job_id] = {"job_id": job_id, "pid": msg.pid, "ip": ip, "inbox": sender,
                                "registered_at": time.time()}
        self.driver_seen[job_id] = time.monotonic()
        self.log.info("driver_registered", job_id=job_id, pid=msg.pid, ip=ip)
        self.post(sender, cm.DriverRegistered(msg.req_id, job_id, sender, self._node_infos()))

    def on_unregister_driver(self, msg: cm.UnregisterDriver, sender: Any) -> None:
        self.driver_seen.pop(msg.job_id, None)
        if self.drivers.pop(msg.job_id, None) is not None:
            self.log.info("driver_unregistered", job_id=msg.job_id)
            self._remove_placement_groups_of(msg.job_id)

    def on_list_drivers(self, msg: sm.ListDrivers, sender: Any) -> None:
        self.reply(msg, sender, sm.Drivers(msg.req_id, tuple(self.drivers.values())))

    def _forget_gone_drivers(self) -> None:
        """Drop drivers that ended without unregistering (killed): on this host by their pid,
        elsewhere when their watch has not pinged for the node timeout."""
        here = {_host_of(self.myAddress), "127.0.0.1"}
        now = time.monotonic()
        for job_id, driver in list(self.drivers.items()):
            if driver["ip"] in here:
                gone = not is_running(driver["pid"])
            else:
                gone = now - self.driver_seen.get(job_id, now) > self.node_timeout
            if gone:
                del self.drivers[job_id]
                self.driver_seen.pop(job_id, None)
                self.log.info("driver_gone", job_id=job_id, pid=driver["pid"], ip=driver["ip"])
                self._remove_placement_groups_of(job_id)

    def on_task_events(self, msg: gm.TaskEvents, sender: Any) -> None:
        """Record task state changes (lineage).

        A "submitted" event carries the whole lineage record, so it needs no read of an
        evicted earlier version; any other event merges into the record, faulting it back.
        """
        for task_id, state, fields in msg.events:
            if state == "placed":  # the global scheduler's placement, kept until the task ends
                node = self.tables.nodes.cached(fields["placed_node"])
                if node is not None and not node.get("alive"):  # placed from a stale node table
                    self.log.warning("task_placed_on_dead_node", task_id=task_id, node=fields["placed_node"])
                    self.post(fields["owner_address"], tm.TasksLost(fields["placed_node"], (task_id,)))
                else:
                    self.placements[task_id] = (fields["placed_node"], fields["owner_address"])
                continue
            if state in FINAL:
                self.placements.pop(task_id, None)
            if state == "submitted":
                record = self.tables.tasks.cached(task_id)
            else:
                record = self.tables.tasks.get(task_id)
            self.tables.tasks.put(task_id, merge_task_event(record, state, fields))

    def on_object_locations(self, msg: om.ObjectLocations, sender: Any) -> None:
        """Add and remove a node's copies; an object with no copy left is kept as "freed"."""
        known = self.tables.objects.get_many(
            [object_id for object_id, _ in msg.added] + list(msg.removed))
        for object_id, size in msg.added:
            record = known.get(object_id) or {"locations": set(), "size": size}
            record["locations"].add(msg.node_id)
            record.update(size=size, state="stored")
            known[object_id] = record
            self.tables.objects.put(object_id, record)
        for object_id in msg.removed:
            record = known.get(object_id)
            if record is not None:
                record["locations"].discard(msg.node_id)
                if not record["locations"]:
                    record["state"] = "freed"
                self.tables.objects.put(object_id, record)

    def on_exit(self, msg: Any, sender: Any) -> None:
        self.log.info("gcs_stopping")
        self._close_store()

    def _close_store(self) -> None:
        """Write what is pending (waiting a little for the store), then close it."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close(timeout=_WRITER_CLOSE_TIMEOUT)
        if self.reader is not None:
            self.reader.close()


def _host_of(address: Any) -> str:
    """The IP of a Thespian TCP address ("" for another kind)."""
    sockname = getattr(getattr(address, "addressDetails", None), "sockname", None)
    return sockname[0] if isinstance(sockname, tuple) else ""

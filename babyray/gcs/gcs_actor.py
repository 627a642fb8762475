"""The GCS actor: the Thespian shell of the cluster's metadata service, on the head node.

Other parts reach it by address; it is never on a task's critical path except for the first
use of a function on a worker. Each handler hands its message to an I/O-free state class and
sends what that returns: ``NodeLiveness`` (nodes, heartbeats, deadlines), ``ActorDirectory``,
``PlacementGroupDirectory``, ``FunctionRegistry``, ``TaskDirectory`` (lineage, placements),
``ObjectDirectory`` and ``DriverRegistry``. ``GcsStorage`` keeps the tables and the store
behind them, and recovers nodes, actors, functions and placement groups after a restart.
What callers learn of an actor (its registration, its state) is sent once the actor's record
is durable (``DurableGate``), so a restarted GCS knows every actor its callers know.
Processes' custom metric values go to ``MetricsTable``, which a ``MetricsExporter`` serves in
Prometheus format when the cluster has a metrics export port.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from babyray import config, log
from babyray.actors.base import PartActor
from babyray.gcs.actor_directory import ActorDirectory
from babyray.gcs.drivers import DriverRegistry
from babyray.gcs.durable_gate import Outgoing
from babyray.gcs.functions import FunctionRegistry
from babyray.gcs.metrics_exporter import MetricsExporter
from babyray.gcs.metrics_table import MetricsTable
from babyray.gcs.node_liveness import NodeLiveness
from babyray.gcs.object_directory import ObjectDirectory
from babyray.gcs.placement_groups import PlacementGroupDirectory, actors_in_group, bundle_nodes
from babyray.gcs.storage import GcsStorage
from babyray.gcs.store import GcsSchemaVersionError, TableName
from babyray.gcs.task_directory import TaskDirectory
from babyray.ids import ActorID, JobID, NodeID, WorkerID, new_job_id
from babyray.procfs import is_ending, is_running
from babyray.protocol import actors as am
from babyray.protocol import cluster as cm
from babyray.protocol import gcs as gm
from babyray.protocol import objects as om
from babyray.protocol import placement as pm
from babyray.protocol import state as sm
from babyray.protocol import tasks as tm
from babyray.session import register_pid
from babyray.util.scheduling_strategies import placement_group_id

DEAD_WORKERS_KEPT = 100_000


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
        gm.MetricsReport: "on_metrics_report",
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
        am.WorkerDied: "on_worker_died",
        om.FindDeadWorkers: "on_find_dead_workers",
        am.SubscribeActor: "on_subscribe_actor",
        am.KillActor: "on_kill_actor",
        am.GetNamedActor: "on_get_named_actor",
        am.GetActorInfo: "on_get_actor_info",
        am.ListNamedActors: "on_list_named_actors",
        pm.CreatePlacementGroup: "on_create_placement_group",
        pm.RemovePlacementGroup: "on_remove_placement_group",
        pm.GetPlacementGroup: "on_get_placement_group",
        pm.PlacementGroupPlaced: "on_placement_group_placed",
    }
    timers = {"liveness": "on_liveness_check", "flush": "on_flush_timer"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session_dir = ""
        self.storage = GcsStorage()  # in memory until StartGcs opens the store
        self.subscribers: list[Any] = []  # global schedulers, told of node changes
        self.global_scheduler: Any = None
        # Workers whose death a local scheduler reported, oldest first (owners ask for their
        # borrowers); the oldest are forgotten past DEAD_WORKERS_KEPT.
        self.dead_workers: dict[WorkerID, None] = {}
        # Custom metrics: updated on the actor's loop, rendered on the exporter's threads.
        self.metrics = MetricsTable()
        self.metrics_lock = threading.Lock()
        self.metrics_exporter: MetricsExporter | None = None
        self._use_tables(config.Settings().node_timeout)

    def _use_tables(self, node_timeout: float) -> None:
        """(Re)make the state classes over the storage's tables."""
        tables = self.storage.tables
        self.nodes = NodeLiveness(tables.nodes, node_timeout)
        self.actors = ActorDirectory(tables.actors)
        self.placement_groups = PlacementGroupDirectory(tables.placement_groups)
        self.functions = FunctionRegistry(tables.functions)
        self.tasks = TaskDirectory(tables.tasks)
        self.objects = ObjectDirectory(tables.objects)
        self.drivers = DriverRegistry(node_timeout)

    def on_start(self, msg: cm.StartGcs, sender: Any) -> None:
        self.session_dir = msg.session_dir
        log.configure(os.path.join(msg.session_dir, "logs"), "gcs")
        self.log = log.get_logger("gcs")
        register_pid(msg.session_dir, "gcs")
        self.enable_thread_posts()  # the store writer tells of durable actor records
        try:
            reachable = self.storage.open(msg.session_dir, msg.config, self._on_store_durable)
        except (ValueError, GcsSchemaVersionError) as exc:  # bad input: init() reports it
            self.log.error("gcs_store_rejected", error=str(exc))
            self.post(sender, gm.GcsError(type(msg).__name__, type(exc).__name__, str(exc)))
            return
        settings = config.Settings(msg.config)
        self._use_tables(settings.node_timeout)
        self.metrics = MetricsTable(os.path.basename(os.path.normpath(msg.session_dir)))
        if settings.metrics_export_port:
            try:
                self.metrics_exporter = MetricsExporter(
                    _host_of(self.myAddress) or "127.0.0.1",
                    settings.metrics_export_port,
                    self._render_metrics,
                )
            except OSError as exc:  # the port is taken: init() / babyray start report it
                self.log.error(
                    "metrics_export_port_unusable", port=settings.metrics_export_port, error=str(exc)
                )
                self.storage.close()
                message = f"cannot serve metrics on port {settings.metrics_export_port}: {exc}"
                self.post(sender, gm.GcsError(type(msg).__name__, type(exc).__name__, message))
                return
        if reachable:
            self._recover()
        else:
            self.log.error(
                "gcs_store_unreachable_at_start",
                url=self.storage.url,
                detail="serving from memory; retrying with backoff",
            )
        self.every(0.5, "liveness")
        self.every(self.storage.policy.period, "flush")
        self.log.info(
            "gcs_started",
            url=self.storage.url,
            flushing=self.storage.policy.enabled,
            recovered=self.storage.recovered,
            metrics_at=self.metrics_exporter.address if self.metrics_exporter else None,
        )
        self.post(sender, cm.Started("gcs", os.getpid()))

    # ---- store, recovery, flushing -----------------------------------------------------

    def _recover(self) -> None:
        """Load nodes, actors, functions and placement groups from the store; tasks and objects
        fault back."""
        loaded = self.storage.recover()
        if loaded is None:
            return  # the store went away again: retried by the flush timer
        self.nodes.recovered()
        self.log.info("gcs_tables_recovered", url=self.storage.url, **loaded)

    def on_flush_timer(self, msg: Any, sender: Any) -> None:
        if self.storage.recovery_due():
            self._recover()
        self._post_all(self.functions.answer_waiters())
        self.storage.flush_pass()

    def _on_store_durable(self, keys: list[tuple[TableName, str]]) -> None:
        """On the writer thread: wake the GCS to send what waited for actor records."""
        if any(table == "actors" for table, _ in keys):
            self.post_from_thread(self.myAddress, gm.ActorsDurable())

    def on_actors_durable(self, msg: gm.ActorsDurable, sender: Any) -> None:
        self._post_all(self.storage.actor_gate.release())

    # ---- table queries -----------------------------------------------------------------

    def on_get_table_entries(self, msg: gm.GetTableEntries, sender: Any) -> None:
        try:
            found = self.storage.tables.table(msg.table).get_many(msg.keys)
            entries = tuple((key, found.get(key)) for key in msg.keys)
            self.reply(msg, sender, gm.TableEntries(msg.req_id, msg.table, entries))
        except Exception as exc:  # answer the waiter instead of raising into Thespian
            self.reply(
                msg, sender, gm.TableEntries(msg.req_id, msg.table, (), f"{type(exc).__name__}: {exc}")
            )

    def on_list_table(self, msg: gm.ListTable, sender: Any) -> None:
        try:
            items = self.storage.list(msg.table, msg.where, msg.limit)
            self.reply(msg, sender, gm.TableEntries(msg.req_id, msg.table, tuple(items)))
        except Exception as exc:
            self.reply(
                msg, sender, gm.TableEntries(msg.req_id, msg.table, (), f"{type(exc).__name__}: {exc}")
            )

    def on_update_table_entries(self, msg: gm.UpdateTableEntries, sender: Any) -> None:
        table = self.storage.tables.table(msg.table)
        for key, fields in msg.updates:
            table.update(key, **fields)

    def on_get_stats(self, msg: gm.GetGcsStats, sender: Any) -> None:
        self.reply(msg, sender, self.storage.stats(msg.req_id, os.getpid()))

    def on_flush_gcs(self, msg: gm.FlushGcs, sender: Any) -> None:
        durable = self.storage.flush(msg.timeout)
        self.reply(msg, sender, gm.GcsFlushed(msg.req_id, durable, self.storage.flush_pass()))

    # ---- functions ---------------------------------------------------------------------

    def on_register_function(self, msg: gm.RegisterFunction, sender: Any) -> None:
        new, answers = self.functions.register(msg.function_id, msg.name, msg.blob)
        if new:
            self.log.info("function_registered", function_id=msg.function_id, name=msg.name)
        self._post_all(answers)

    def on_get_function(self, msg: gm.GetFunction, sender: Any) -> None:
        # Faults back an evicted function; waits for one whose registration is still on its way.
        blob = self.functions.get(msg.function_id, msg.reply_to or sender, msg.req_id)
        if blob is not None:
            self.reply(msg, sender, gm.FunctionBlob(msg.req_id, msg.function_id, blob))

    # ---- nodes -------------------------------------------------------------------------

    def on_register_node(self, msg: cm.RegisterNode, sender: Any) -> None:
        self.nodes.register(msg, time.monotonic(), time.time())
        self.log.info("node_registered", node=msg.node_id, address=msg.address, resources=msg.resources)
        self._publish_nodes()

    def on_heartbeat(self, msg: cm.Heartbeat, sender: Any) -> None:
        if self.nodes.heartbeat(msg, time.monotonic()):
            self.log.info("node_alive_again", node=msg.node_id)
            # its bundles were placed again elsewhere when it was declared dead; before it is
            # offered to the global scheduler again, so none of its new reservations is dropped
            self._return_bundles_of(self.placement_groups.not_on(msg.node_id), msg.node_id)
            self._publish_nodes()

    def on_liveness_check(self, msg: Any, sender: Any) -> None:
        self._forget_gone_drivers()
        self._post_all(self.storage.actor_gate.release())  # held while the store went unhealthy
        dead = self.nodes.expire(time.monotonic())
        for death in dead:
            if death.silent_for is None:  # alive before the head restarted, and not back: died meanwhile
                self.log.warning(
                    "node_dead", node=death.node_id, reason="not registered again after the GCS restart"
                )
            else:
                self.log.warning("node_dead", node=death.node_id, silent_for=round(death.silent_for, 2))
        if dead:
            self._publish_nodes()  # first, so the global scheduler does not place restarts there
        for death in dead:
            self._reschedule_groups_on(death.node_id)
            for owner, lost in self.tasks.lost_with(death.node_id):
                self.log.warning(
                    "tasks_lost_with_node",
                    node=death.node_id,
                    count=len(lost.task_ids),
                    task_ids=lost.task_ids[:20],
                )
                self.post(owner, lost)
            for actor_id in self.actors.actors_on(death.node_id):
                self.on_actor_worker_died(
                    am.ActorWorkerDied(actor_id, death.node_id, f"node {death.node_id} died"), None
                )
            owned = self.actors.owned_on_node(death.node_id)
            self._end_owned(owned, f"its node {death.node_id} died")

    def _announce_restart(self, global_scheduler: Any) -> None:
        """Tell the nodes recovered from the store where the GCS and global scheduler are now,
        and schedule again the actors that were waiting to be placed.

        A restarted head's parts are new processes with new addresses; the members still send
        to the old ones. Each local scheduler re-registers (and is alive again) on this message.
        """
        for node_id, record in self.nodes.announce_restart(time.monotonic()):
            self.log.info("gcs_restart_announced", node=node_id, address=record.get("address"))
            self.post(record["scheduler"], cm.GcsRestarted(self.myAddress, global_scheduler))
        unplaced = self.actors.unplaced()
        if unplaced:
            self.log.info("actors_scheduled_again", actor_ids=[spec.actor_id for spec in unplaced])
            self.post(global_scheduler, tm.ForwardTasks("gcs", tuple(unplaced)))

    def _publish_nodes(self) -> None:
        infos = self.nodes.infos()
        for sub in self.subscribers:
            self.post(sub, cm.NodesChanged(infos))

    def on_get_nodes(self, msg: cm.GetNodes, sender: Any) -> None:
        self.drivers.ping(msg.job_id, time.monotonic())
        self.reply(msg, sender, cm.Nodes(msg.req_id, self.nodes.infos()))

    def on_subscribe_nodes(self, msg: cm.SubscribeNodes, sender: Any) -> None:
        if self.storage.recovered and self.global_scheduler is None:
            self._announce_restart(sender)
        self.global_scheduler = sender
        if sender not in self.subscribers:
            self.subscribers.append(sender)
        self.post(sender, cm.NodesChanged(self.nodes.infos()))
        for request in self.placement_groups.to_place():  # recovered from the store, or none
            self.post(sender, request)
        for pg_id in self.placement_groups.removed():  # so tasks still sent to them fail
            self.post(sender, pm.ForgetPlacementGroup(pg_id))

    # ---- actors ------------------------------------------------------------------------

    def _post_all(self, outgoing: Outgoing) -> None:
        for dest, message in outgoing:
            self.post(dest, message)

    def _post_actor(self, actor_id: ActorID, outgoing: Outgoing) -> None:
        """Send news of an actor once its record is durable."""
        self._post_all(self.storage.actor_gate.post(actor_id, outgoing))

    def on_register_actor(self, msg: am.RegisterActor, sender: Any) -> None:
        actor_id = msg.spec.actor_id
        assert actor_id is not None, "an actor's creation spec carries its id"
        error = self.actors.register(actor_id, msg, _host_of(msg.reply_to or sender))
        self._post_actor(actor_id, [(msg.reply_to or sender, am.ActorRegistered(msg.req_id, error))])
        if error is None:
            self.log.info(
                "actor_registered", actor_id=actor_id, name=msg.info.name, class_name=msg.info.class_name
            )
            pg_id = placement_group_id(msg.spec.scheduling_strategy)
            if pg_id is not None and self.placement_groups.is_removed(pg_id):
                self._post_all(self.actors.group_removed(actor_id, pg_id))
                return
            self.post(self.global_scheduler, tm.ForwardTasks("gcs", (msg.spec,)))

    def on_actor_started(self, msg: am.ActorStarted, sender: Any) -> None:
        self.log.info("actor_alive", actor_id=msg.actor_id, node=msg.node_id, worker_id=msg.worker_id)
        self._post_actor(msg.actor_id, self.actors.started(msg, self.nodes.scheduler_of(msg.node_id)))

    def on_actor_init_failed(self, msg: am.ActorInitFailed, sender: Any) -> None:
        self.log.warning("actor_init_failed", actor_id=msg.actor_id)
        self._post_actor(msg.actor_id, self.actors.init_failed(msg))

    def on_actor_worker_died(self, msg: am.ActorWorkerDied, sender: Any) -> None:
        outgoing, restart_spec = self.actors.worker_died(msg)
        self._post_actor(msg.actor_id, outgoing)
        if restart_spec is not None:
            self.log.warning("actor_restarting", actor_id=msg.actor_id, reason=msg.reason)
            self.post(self.global_scheduler, tm.ForwardTasks("gcs", (restart_spec,)))
        else:
            self.log.warning("actor_dead", actor_id=msg.actor_id, reason=msg.reason)

    def on_worker_died(self, msg: am.WorkerDied, sender: Any) -> None:
        self._worker_dead(msg.worker_id)
        self._end_owned(
            self.actors.owned_by(msg.worker_id),
            f"worker {msg.worker_id} on node {msg.node_id} died ({msg.reason})",
        )

    def _worker_dead(self, worker_id: WorkerID) -> None:
        """Remember that ``worker_id`` (a worker or a driver) is gone, for ``FindDeadWorkers``;
        every node's store frees the objects it owned, and its scheduler cancels its tasks."""
        self.dead_workers[worker_id] = None
        for part in (*self.nodes.alive_parts("store"), *self.nodes.alive_parts("scheduler")):
            self.post(part, om.OwnersDied((worker_id,)))
        if len(self.dead_workers) > DEAD_WORKERS_KEPT:
            del self.dead_workers[next(iter(self.dead_workers))]

    def on_find_dead_workers(self, msg: om.FindDeadWorkers, sender: Any) -> None:
        dead = tuple(w for w in msg.worker_ids if w in self.dead_workers)
        self.reply(msg, sender, om.DeadWorkers(msg.req_id, dead))

    def _end_owned(self, actor_ids: list[ActorID], owner_death: str) -> None:
        """The owner of ``actor_ids`` died (``owner_death`` says how): they die with it."""
        if actor_ids:
            self.log.warning("actors_dead_with_owner", actor_ids=actor_ids, owner=owner_death)
        for actor_id in actor_ids:
            self._post_actor(
                actor_id,
                self.actors.end(actor_id, f"The actor is dead because its owner has died: {owner_death}"),
            )

    def on_subscribe_actor(self, msg: am.SubscribeActor, sender: Any) -> None:
        # A new caller may come before news of the owner's death (the handle was passed on
        # just before the owner died): an owner on this host is checked by its pid now.
        owner = self.actors.owner_process(msg.actor_id)
        if owner is not None and owner[1] in self._here() and is_ending(owner[2]):
            self._end_owned(self.actors.owned_by(owner[0]), f"its process {owner[0]} (pid {owner[2]}) ended")
        self._post_actor(msg.actor_id, self.actors.subscribe(msg.actor_id, msg.reply_to or sender))

    def on_kill_actor(self, msg: am.KillActor, sender: Any) -> None:
        self.log.info("actor_kill_requested", actor_id=msg.actor_id, no_restart=msg.no_restart)
        self._post_actor(msg.actor_id, self.actors.kill(msg))

    def on_get_named_actor(self, msg: am.GetNamedActor, sender: Any) -> None:
        self.reply(msg, sender, am.NamedActor(msg.req_id, self.actors.named(msg.name, msg.namespace)))

    def on_get_actor_info(self, msg: am.GetActorInfo, sender: Any) -> None:
        self.reply(msg, sender, am.ActorInfoFound(msg.req_id, self.actors.info(msg.actor_id)))

    def on_list_named_actors(self, msg: am.ListNamedActors, sender: Any) -> None:
        self.reply(msg, sender, am.NamedActorList(msg.req_id, self.actors.names(msg.namespace)))

    # ---- placement groups ----------------------------------------------------------------

    def on_create_placement_group(self, msg: pm.CreatePlacementGroup, sender: Any) -> None:
        error = self.placement_groups.create(msg)
        self.reply(msg, sender, pm.PlacementGroupReply(msg.req_id, error=error))
        if error is None:
            self.log.info(
                "placement_group_created",
                pg_id=msg.pg_id,
                name=msg.name,
                strategy=msg.strategy,
                bundles=msg.bundles,
            )
            self.post(self.global_scheduler, pm.PlacePlacementGroup(msg.pg_id, msg.bundles, msg.strategy))

    def on_placement_group_placed(self, msg: pm.PlacementGroupPlaced, sender: Any) -> None:
        if self.placement_groups.placed(msg):
            self.log.info("placement_group_placed", pg_id=msg.pg_id, nodes=msg.nodes)
            for node_id in set(msg.nodes):  # one died while the bundles were being reserved
                if self.nodes.known_dead(node_id):
                    self._reschedule_groups_on(node_id)
        else:  # removed while its bundles were being reserved
            self._return_bundles(msg.pg_id, set(msg.nodes))

    def _reschedule_groups_on(self, node_id: NodeID) -> None:
        """A node died: have the bundles it held reserved again on other nodes."""
        for request in self.placement_groups.node_died(node_id):
            self.log.warning(
                "placement_group_rescheduling",
                pg_id=request.pg_id,
                node=node_id,
                bundles=[i for i, kept in enumerate(request.kept) if not kept],
            )
            self.post(self.global_scheduler, request)

    def on_remove_placement_group(self, msg: pm.RemovePlacementGroup, sender: Any) -> None:
        self._remove_placement_group(msg.pg_id, "removed")
        self.reply(msg, sender, pm.PlacementGroupReply(msg.req_id, self.placement_groups.get(msg.pg_id)))

    def _remove_placement_group(self, pg_id: str, why: str) -> None:
        """Kill the group's actors (no restart), stop placing it and free its bundles."""
        record = self.placement_groups.remove(pg_id)
        if record is None:
            return
        actors = actors_in_group(self.actors.table, pg_id)
        self.log.info(
            "placement_group_removed", pg_id=pg_id, state_was=record["state"], why=why, actors=actors
        )
        for actor_id in actors:
            self._post_actor(actor_id, self.actors.group_removed(actor_id, pg_id))
        self.post(self.global_scheduler, pm.ForgetPlacementGroup(pg_id))
        self._return_bundles(pg_id, bundle_nodes(record))

    def _return_bundles_of(self, pg_ids: list[str], node_id: NodeID) -> None:
        scheduler = self.nodes.scheduler_of(node_id)
        if scheduler is not None:
            for pg_id in pg_ids:
                self.post(scheduler, pm.ReturnBundles(pg_id))

    def _return_bundles(self, pg_id: str, node_ids: set[NodeID]) -> None:
        for node_id in node_ids:
            scheduler = self.nodes.scheduler_of(node_id)
            if scheduler is not None:
                self.post(scheduler, pm.ReturnBundles(pg_id))

    def on_get_placement_group(self, msg: pm.GetPlacementGroup, sender: Any) -> None:
        record = self.placement_groups.named(msg.name) if msg.name else self.placement_groups.get(msg.pg_id)
        self.reply(msg, sender, pm.PlacementGroupReply(msg.req_id, record))

    def _driver_ended(self, driver: dict, driver_end: str) -> None:
        """A driver ended (``driver_end`` says how): the refs it owned are lost to their
        borrowers (``FindDeadWorkers`` names it), and its job ends."""
        if driver["worker_id"]:
            self._worker_dead(driver["worker_id"])
        self._job_ended(driver["job_id"], driver_end)

    def _job_ended(self, job_id: JobID, driver_end: str) -> None:
        """A driver ended: its actors and placement groups that are not detached go with it."""
        self._end_owned(self.actors.owned_by_job(job_id), driver_end)
        for pg_id in self.placement_groups.owned_by_job(job_id):
            self._remove_placement_group(pg_id, f"job {job_id} ended")

    # ---- drivers, lineage, objects -----------------------------------------------------

    def on_register_driver(self, msg: cm.RegisterDriver, sender: Any) -> None:
        job_id = msg.job_id or new_job_id()
        ip = _host_of(sender)
        self.drivers.register(job_id, msg.pid, ip, sender, time.monotonic(), time.time(), msg.worker_id)
        self.log.info("driver_registered", job_id=job_id, pid=msg.pid, ip=ip)
        self.post(sender, cm.DriverRegistered(msg.req_id, job_id, sender, self.nodes.infos()))

    def on_unregister_driver(self, msg: cm.UnregisterDriver, sender: Any) -> None:
        driver = self.drivers.unregister(msg.job_id)
        if driver is not None:
            self.log.info("driver_unregistered", job_id=msg.job_id)
            self._driver_ended(driver, f"the driver of job {msg.job_id} disconnected")

    def on_list_drivers(self, msg: sm.ListDrivers, sender: Any) -> None:
        self.reply(msg, sender, sm.Drivers(msg.req_id, self.drivers.records()))

    def _forget_gone_drivers(self) -> None:
        """Drop drivers that ended without unregistering (killed): on this host by their pid,
        elsewhere when their watch has not pinged for the node timeout."""
        for driver in self.drivers.gone(time.monotonic(), self._here(), is_running):
            self.log.info("driver_gone", job_id=driver["job_id"], pid=driver["pid"], ip=driver["ip"])
            self._driver_ended(driver, f"the driver of job {driver['job_id']} (pid {driver['pid']}) exited")

    def _here(self) -> set[str]:
        """The IPs of this host: a process there is checked by its pid."""
        return {_host_of(self.myAddress), "127.0.0.1"}

    def on_task_events(self, msg: gm.TaskEvents, sender: Any) -> None:
        """Record task state changes (lineage) and placements."""
        for owner, lost in self.tasks.record(msg.events, self.nodes.known_dead):
            self.log.warning("task_placed_on_dead_node", task_id=lost.task_ids[0], node=lost.node_id)
            self.post(owner, lost)

    def on_metrics_report(self, msg: gm.MetricsReport, sender: Any) -> None:
        now = time.monotonic()
        with self.metrics_lock:
            self.metrics.update(msg.reporter, _host_of(sender), msg.series, now)
            gone = self.metrics.drop_stale(now)
        if gone:
            self.log.info("metrics_reporters_dropped", reporters=gone)

    def _render_metrics(self) -> str:
        """The Prometheus page (on an exporter thread)."""
        with self.metrics_lock:
            self.metrics.drop_stale(time.monotonic())
            return self.metrics.render()

    def on_object_locations(self, msg: om.ObjectLocations, sender: Any) -> None:
        self.objects.update(msg.node_id, msg.added, msg.removed)

    def on_exit(self, msg: Any, sender: Any) -> None:
        self.log.info("gcs_stopping")
        if self.metrics_exporter is not None:
            self.metrics_exporter.close()
            self.metrics_exporter = None
        self.storage.close()


def _host_of(address: Any) -> str:
    """The IP of a Thespian TCP address ("" for another kind)."""
    sockname = getattr(getattr(address, "addressDetails", None), "sockname", None)
    return sockname[0] if isinstance(sockname, tuple) else ""

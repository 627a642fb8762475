"""The local scheduler (raylet) of one node: its task queue, resources and worker pool.

Owners send it tasks whose arguments are resolved. It runs each on an idle worker when the
node's free resources allow, queues a few more behind busy workers when the node is
saturated (pipelining), and forwards tasks the node can never run to the global scheduler.
A worker may stay leased to a task's owner after the task, so that the owner pushes its next
tasks straight to it (``babyray.api.leases``): the worker's resources stay charged until it
returns the lease, which it does when idle, or when asked because tasks wait here.
It starts workers, lends the CPU of a worker blocked in ``get`` to a new one (the most deeply
nested tasks run first, so remote recursion needs a few workers per level; ``max_workers``
gives way when every worker is blocked), and replaces workers that die, retrying their
tasks within ``max_retries``.

It is the one owner of its workers' liveness: it watches each worker process it started
(a pidfd, a periodic poll, and Thespian's child-exit message all lead to one check of the
process's exit status), so any death - a signal, ``sys.exit``, ``os._exit``, ``kill -9``,
several at once - is noticed within a second.

This actor is the Thespian shell: messages in and out, worker processes (start, pidfd, poll,
kill). The state and the rules are I/O-free and unit-tested on their own: the queue
(``task_queue``), the workers' states and leases and the node's resource pool they charge
(``worker_table``, ``resources``), the dispatch rule (``dispatch``), the results that may
still be on their way from a dead worker (``recent_results``) and the placement-group
bundles (``bundles``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections import Counter, OrderedDict
from typing import Any

from thespian.actors import ActorExitRequest, ChildActorExited, WakeupMessage

from babyray import config, exceptions, log
from babyray.actors.base import PartActor
from babyray.actors.batching import address_key
from babyray.actors.bundles import BundleLedger, uses_group
from babyray.actors.dispatch import plan_dispatch, steal_requests
from babyray.actors.recent_results import RESULT_GRACE, RecentResults
from babyray.actors.resources import ResourcePool
from babyray.actors.running_task import read_running_task, take_running_task
from babyray.actors.scheduling_policy import wants_global_placement
from babyray.actors.task_queue import TaskQueue
from babyray.actors.worker import Worker
from babyray.actors.worker_table import Held, WorkerRecord, WorkerState, WorkerTable
from babyray.ids import ActorID, JobID, TaskID, WorkerID, new_worker_id
from babyray.protocol import actors as am
from babyray.protocol import cluster as cm
from babyray.protocol import objects as om
from babyray.protocol import placement as pm
from babyray.protocol import state as sm
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm
from babyray.runtime_env.validation import env_key
from babyray.session import register_pid
from babyray.task_failure import failed_result, take_retry

WORKER_STOP_GRACE = 0.5  # seconds a worker has to exit when its node stops, before SIGKILL
LIVENESS_POLL = 0.5  # seconds between polls of every worker process (besides their pidfds)
FORCE_CANCEL_ANSWER_TIMEOUT = 2.0  # seconds a worker has to answer a forced cancel passed to it
DEAD_OWNERS_KEPT = 10_000  # owners known dead whose tasks arriving later are dropped


def exit_description(exitcode: int) -> str:
    """``multiprocessing`` exit code -> "killed by signal SIGSEGV" or "exit status 3"."""
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"killed by signal {name}"
    return f"exit status {exitcode}"


class LocalScheduler(PartActor):
    component = "local_scheduler"
    handlers = {
        cm.StartNode: "on_start",
        tm.SubmitTasks: "on_submit",
        tm.WorkerReady: "on_worker_ready",
        tm.WorkerTasksDone: "on_tasks_done",
        tm.LeaseReturned: "on_lease_returned",
        tm.CancelRunningTask: "on_cancel_running_task",
        tm.ForceCancelNotRunning: "on_force_cancel_not_running",
        tm.WorkerBlocked: "on_worker_blocked",
        tm.WorkerUnblocked: "on_worker_unblocked",
        tm.ReturnTasks: "on_return_tasks",
        tm.CancelTask: "on_cancel",
        om.OwnersDied: "on_owners_died",
        am.KillActorWorker: "on_kill_actor_worker",
        am.ActorExiting: "on_actor_exiting",
        cm.GcsRestarted: "on_gcs_restarted",
        sm.GetWorkers: "on_get_workers",
        pm.PrepareBundles: "on_prepare_bundles",
        pm.CommitBundles: "on_commit_bundles",
        pm.ReturnBundles: "on_return_bundles",
    }
    timers = {"heartbeat": "on_heartbeat_timer", "liveness": "on_liveness_timer"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.node: cm.StartNode | None = None
        self.pool = ResourcePool({})
        self.queue = TaskQueue()
        self.workers = WorkerTable(self.pool)
        self.processes: dict[WorkerID, Any] = {}  # worker id -> its multiprocessing.Process, until reaped
        self.pidfds: dict[int, WorkerID] = {}  # pidfd -> worker id
        self.force_cancelled: set[str] = set()
        self.dead_owners: OrderedDict[WorkerID, None] = OrderedDict()  # see on_owners_died
        # forced cancels passed to the worker holding the task, not answered yet:
        # task id -> (worker id, monotonic deadline)
        self.force_cancels: dict[TaskID, tuple[WorkerID, float]] = {}
        # cancels passed on to the worker holding the task: one that comes back unfinished (its
        # worker died, or handed it back) fails as cancelled instead of running again
        self.cancels_passed: set[TaskID] = set()
        self.killed_actors: set[str] = set()
        self.recent = RecentResults(address_key)  # tasks finished lately, by worker
        self.last_heartbeat = 0.0
        self.bundles = BundleLedger()  # placement group bundles reserved on this node
        self.lease_idle_timeout = 0.0  # 0: no worker leases

    # ---- start-up --------------------------------------------------------------------

    def on_start(self, msg: cm.StartNode, sender: Any) -> None:
        self.node = msg
        log.configure(os.path.join(msg.session_dir, "logs"), "local_scheduler", msg.node_id)
        self.log = log.get_logger("local_scheduler")
        register_pid(msg.session_dir, "local_scheduler")
        self.pool = ResourcePool(msg.resources)
        self.workers = WorkerTable(self.pool)
        settings = config.Settings(msg.config)
        self.pipeline_depth = settings.worker_pipeline_depth
        self.max_workers = settings.max_workers
        self.heartbeat_period = settings.heartbeat_period
        self.idle_timeout = settings.idle_worker_timeout
        self.lease_idle_timeout = settings.lease_idle_timeout
        self.locality = settings.scheduling_policy == "locality"
        for _ in range(self.pool.cpus()):
            self._start_worker()
        self.post(
            msg.gcs, cm.RegisterNode(msg.node_id, msg.address, self.myAddress, msg.store, self.pool.total)
        )
        self.every(self.heartbeat_period, "heartbeat")
        self.every(LIVENESS_POLL, "liveness")
        self.log.info("local_scheduler_started", resources=self.pool.total)
        self.post(sender, cm.Started("local_scheduler", os.getpid(), self.myAddress))

    def _start_worker(self, runtime_env: dict | None = None) -> WorkerRecord | None:
        node = self._node()
        address = self.createActor(Worker)
        process = self.child_process(address)
        if process is None or process.pid is None:
            self.log.error("worker_start_failed")
            return None
        worker = WorkerRecord(new_worker_id(), address, process.pid, env_key=env_key(runtime_env))
        self.workers.add(worker)
        self.processes[worker.worker_id] = process
        try:
            self.pidfds[os.pidfd_open(process.pid)] = worker.worker_id
        except OSError as exc:  # already gone (the poll notices), or no pidfd on this kernel
            self.log.warning("worker_pidfd_unavailable", worker_id=worker.worker_id, error=str(exc))
        self.post(
            address,
            tm.WorkerStart(
                worker.worker_id,
                node.node_id,
                node.session_dir,
                self.myAddress,
                node.store,
                node.gcs,
                JobID(""),
                node.config,
                runtime_env or {},
                node.head_address,
            ),
        )
        self.log.info(
            "worker_starting", worker_id=worker.worker_id, pid=process.pid, runtime_env_key=worker.env_key
        )
        return worker

    def _node(self) -> cm.StartNode:
        assert self.node is not None, "StartNode comes first"
        return self.node

    def on_worker_ready(self, msg: tm.WorkerReady, sender: Any) -> None:
        if self.workers.mark_ready(msg.worker_id, sender) is not None:
            self._dispatch()

    # ---- scheduling ------------------------------------------------------------------

    def on_submit(self, msg: tm.SubmitTasks, sender: Any) -> None:
        node = self._node()
        placed = address_key(sender) == address_key(node.global_scheduler)  # never bounce those back
        for spec in msg.specs:
            if not self.pool.fits_ever(spec.resources) or (
                not placed and wants_global_placement(spec, node.node_id, self.locality)
            ):
                self._forward(spec)
            elif not self._orphaned(spec):
                self.queue.push(spec)
        self._dispatch()

    def _forward(self, spec: vm.TaskSpec) -> None:
        node = self._node()
        self.log.info("task_forwarded", task_id=spec.task_id, resources=spec.resources)
        self.post(node.global_scheduler, tm.ForwardTasks(node.node_id, (spec,)))

    def _dispatch(self) -> None:
        """Give queued tasks to workers; start workers when resources are free but none idle."""
        if not len(self.queue):
            for worker, count in steal_requests(self.workers):
                self.post(worker.address, tm.StealTasks(count))
            self._ensure_workers([])
            self._maybe_heartbeat()
            return
        plan = plan_dispatch(
            self.queue,
            self.workers,
            self.pipeline_depth,
            self.max_workers - self.pool.cpus(),
            leases=self.lease_idle_timeout > 0,
        )
        for spec in plan.refused:
            self._refuse_actor(spec)
        self._ensure_workers(plan.wanted)
        now = time.monotonic()
        for worker_id, (address, specs) in plan.batches.items():
            lease = worker_id in plan.leasable
            leased = self.workers.get(worker_id) if lease else None
            if leased is not None:
                self.workers.note_lease_contact(leased, specs[0].owner, now)
            self.post(address, tm.ExecuteTasks(tuple(specs), lease=lease))
        self._reclaim_leases()
        self._maybe_heartbeat()

    def _reclaim_leases(self) -> None:
        """Tasks wait here: ask leased workers for their leases back."""
        if len(self.queue):
            for worker in self.workers.to_reclaim():
                self.post(worker.address, tm.ReclaimLease())

    def _ensure_workers(self, wanted: list[dict]) -> None:
        """Start workers for runnable tasks (``wanted``: their runtime_envs), and keep the
        pool at the CPU count with workers of no runtime_env.

        ``max_workers`` is a soft limit, as Ray's: at it, a worker still starts, one at a time,
        when every worker is blocked in ``get`` (nested tasks waiting for the tasks queued
        here): else nothing would ever run them."""
        envs = {env_key(env): env for env in wanted}
        counts = Counter(env_key(env) for env in wanted)
        counts[""] = max(counts.get("", 0), self.pool.cpus() - self.workers.pool_size())
        for key, count in counts.items():
            for _ in range(count - self.workers.starting(key)):
                if len(self.workers) >= self.max_workers and not self._stop_idle_worker_of_other_env(key):
                    if not (wanted and self.workers.all_blocked()):
                        break
                    self.log.warning(
                        "worker_cap_exceeded",
                        max_workers=self.max_workers,
                        workers=len(self.workers),
                        blocked=self.workers.count(WorkerState.BLOCKED),
                        queued=len(self.queue),
                        reason="every worker is blocked in get while tasks wait: one more starts "
                        "beyond max_workers (init(max_workers=...), BABYRAY_MAX_WORKERS)",
                    )
                if self._start_worker(envs.get(key)) is None:
                    return

    def _stop_idle_worker_of_other_env(self, key: str) -> bool:
        """Make room for a worker of runtime_env ``key``: stop an idle worker of another one."""
        for worker in self.workers.idle():
            if worker.env_key != key:
                self._stop_worker(worker)
                return True
        return False

    def _refuse_actor(self, spec: vm.TaskSpec) -> None:
        node = self._node()
        room = max(0, self.max_workers - self.pool.cpus())
        reason = (
            f"The actor {spec.actor_id} ({spec.function_name}) cannot start on node {node.node_id}: "
            f"its {self.workers.actor_workers()} actor workers are the most the max_workers={self.max_workers} "
            f"setting allows ({room}; {self.pool.cpus()} more are kept for tasks). Raise it with "
            f"init(max_workers=...) or the BABYRAY_MAX_WORKERS environment variable of `babyray start`."
        )
        self.log.warning("actor_refused_worker_limit", actor_id=spec.actor_id, max_workers=self.max_workers)
        self.post(
            node.gcs, am.ActorWorkerDied(spec.actor_id or ActorID(""), node.node_id, reason, final=True)
        )

    # ---- what workers report -----------------------------------------------------------

    def on_tasks_done(self, msg: tm.WorkerTasksDone, sender: Any) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is None:
            return
        now = time.monotonic()
        self.recent.note(
            worker.worker_id, self.workers.finish(worker, set(msg.task_ids), msg.leased_to, now), now
        )
        self.cancels_passed.difference_update(msg.task_ids)
        if msg.retiring:
            self.log.info("worker_retiring", worker_id=worker.worker_id, holds=len(worker.assigned))
            worker.retiring = True
            self.workers.mark_exiting(worker)
        elif msg.leased_to is not None and worker.lessee is None:  # it still holds tasks: no lease
            self.post(worker.address, tm.ReclaimLease())
        self._stop_if_retired(worker)
        self._dispatch()

    def _stop_if_retired(self, worker: WorkerRecord) -> None:
        """Stop a worker that reached a function's ``max_calls`` once it holds no task (it hands
        back those sent to it meanwhile)."""
        if worker.retiring and not worker.assigned:
            self._stop_worker(worker)

    def on_lease_returned(self, msg: tm.LeaseReturned, sender: Any) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is not None:
            self.workers.note_lease_contact(worker, msg.owner, time.monotonic())
            if self.workers.end_lease(worker):
                self._dispatch()

    def on_worker_blocked(self, msg: tm.WorkerBlocked, sender: Any) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is None:
            return
        self.workers.finish(worker, {s.task_id for s in msg.returned})
        self._requeue(msg.returned)
        self.workers.block(worker)
        self._dispatch()

    def on_worker_unblocked(self, msg: tm.WorkerUnblocked, sender: Any) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is not None:
            self.workers.unblock(worker)
            self._reclaim_leases()

    def on_return_tasks(self, msg: tm.ReturnTasks, sender: Any) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is not None:
            self.workers.finish(worker, {s.task_id for s in msg.specs})
            self._stop_if_retired(worker)
        self._requeue(msg.specs)
        self._dispatch()

    def _requeue(self, specs: list[vm.TaskSpec] | tuple) -> None:
        """Queue first tasks that come back unstarted; one whose cancel we passed on fails."""
        again = []
        for spec in specs:
            if self._orphaned(spec):
                continue
            if spec.task_id in self.cancels_passed:
                self.cancels_passed.discard(spec.task_id)
                self._fail(spec, exceptions.TaskCancelledError(spec.task_id))
            else:
                again.append(spec)
        self.queue.push_front(again)

    # ---- owners that died ------------------------------------------------------------

    def on_owners_died(self, msg: om.OwnersDied, sender: Any) -> None:
        """Cancel the tasks of owners that died, as Ray does: nobody can take their results.
        Queued ones go, and so do those that arrive or come back later; a worker running one
        is killed (the other tasks it held go back to the queue). Actor creations are left to
        the GCS (a detached actor outlives its creator), and tasks an owner pushed to a worker
        it leased are not known here: they run to their end."""
        for owner in msg.worker_ids:
            self.dead_owners[owner] = None
            if len(self.dead_owners) > DEAD_OWNERS_KEPT:
                self.dead_owners.popitem(last=False)
        session_dir = self._node().session_dir
        for worker in [w for w in self.workers if any(self._orphaned(s) for s in w.assigned)]:
            running_id = read_running_task(session_dir, worker.worker_id)
            running = next((s for s in worker.assigned if s.task_id == running_id), None)
            if running is not None and self._orphaned(running):
                self._kill_running(worker, running, "task_owner_died_killing_worker", owner=running.owner_id)
        dropped = self.queue.take_all(self._orphaned)
        if dropped:
            self.log.info("tasks_of_dead_owners_dropped", count=len(dropped), owners=list(msg.worker_ids))
        self._dispatch()

    def _orphaned(self, spec: vm.TaskSpec) -> bool:
        """Whether ``spec`` is a task (not an actor creation) whose owner died."""
        return not spec.actor_creation and spec.owner_id in self.dead_owners

    # ---- cancellation ----------------------------------------------------------------

    def on_cancel(self, msg: tm.CancelTask, sender: Any) -> None:
        """A queued task fails here; one a worker holds is the worker's to cancel, as only it
        knows whether the task still runs: a forced cancel that killed on our word could kill the
        task after it, its done message still on the way. A forced cancel the worker does not
        answer within ``FORCE_CANCEL_ANSWER_TIMEOUT`` (its task holds the GIL) kills it here."""
        spec = self.queue.remove(msg.task_id)
        if spec is not None:
            self._fail(spec, exceptions.TaskCancelledError(spec.task_id))
            return
        worker = self.workers.holder(msg.task_id)
        if worker is not None:
            self.post(worker.address, msg)
            self.cancels_passed.add(msg.task_id)
            if msg.force:
                deadline = time.monotonic() + FORCE_CANCEL_ANSWER_TIMEOUT
                self.force_cancels[msg.task_id] = (worker.worker_id, deadline)
        else:  # not here (forwarded to the global scheduler, or ended): it knows where it went
            global_scheduler = self._node().global_scheduler
            if address_key(sender) != address_key(global_scheduler):  # it placed the task here
                self.post(global_scheduler, msg)

    def on_cancel_running_task(self, msg: tm.CancelRunningTask, sender: Any) -> None:
        """A worker's running task was force-cancelled: it fails here, and the worker dies (whose
        death then retries no task of ours; a lessee learns it by LeaseLost)."""
        self.force_cancels.pop(msg.spec.task_id, None)
        worker = self.workers.get(msg.worker_id)
        if worker is None:
            self._fail(msg.spec, exceptions.TaskCancelledError(msg.spec.task_id), worker_died=True)
            return
        self._kill_cancelling(worker, msg.spec, "worker_asked")

    def on_force_cancel_not_running(self, msg: tm.ForceCancelNotRunning, sender: Any) -> None:
        self.force_cancels.pop(msg.task_id, None)

    def _kill_unanswered_cancels(self) -> None:
        """Kill a worker that has not answered a forced cancel in time and still runs its task
        (by its running-task slot: our own view may lag, the answer only late)."""
        now = time.monotonic()
        for task_id, (worker_id, deadline) in list(self.force_cancels.items()):
            if deadline > now:
                continue
            del self.force_cancels[task_id]
            worker = self.workers.get(worker_id)
            if worker is None or read_running_task(self._node().session_dir, worker_id) != task_id:
                continue
            spec = next((s for s in worker.assigned if s.task_id == task_id), None)
            if spec is None:
                continue
            self._kill_cancelling(worker, spec, "worker_did_not_answer")

    def _kill_cancelling(self, worker: WorkerRecord, spec: vm.TaskSpec, why: str) -> None:
        """Fail ``spec``, force-cancelled as ``worker`` runs it, and kill the worker; its death
        requeues the tasks it held besides."""
        self._fail(spec, exceptions.TaskCancelledError(spec.task_id), worker_died=True)
        self._kill_running(worker, spec, "task_force_cancelled_killing_worker", why=why)

    def _kill_running(self, worker: WorkerRecord, spec: vm.TaskSpec, event: str, **fields: Any) -> None:
        """Kill ``worker``, which runs ``spec``, logged as ``event``: the death charges ``spec`` no
        retry and requeues the tasks it held besides."""
        if any(s.task_id == spec.task_id for s in worker.assigned):
            self.force_cancelled.add(spec.task_id)
        self.log.info(event, task_id=spec.task_id, worker_id=worker.worker_id, pid=worker.pid, **fields)
        os.kill(worker.pid, signal.SIGKILL)
        self._check_workers([worker.worker_id], "kill")

    def _fail(self, spec: vm.TaskSpec, error: BaseException, worker_died: bool = False) -> None:
        """Tell the owner ``spec`` failed (``worker_died``: while running, so it may have stored returns)."""
        node = self._node()
        store = node.store if worker_died else None
        self.post(
            spec.owner, tm.TaskResults((failed_result(spec, error, node_id=node.node_id, store=store),))
        )

    # ---- worker liveness ---------------------------------------------------------------

    def watched_fds(self) -> list[int]:
        return list(self.pidfds)

    def on_fds_ready(self, fds: list[int]) -> None:
        self._check_workers([self.pidfds[fd] for fd in fds if fd in self.pidfds], "pidfd")

    def on_liveness_timer(self, msg: WakeupMessage, sender: Any) -> None:
        self._check_workers(list(self.processes), "poll")
        self._kill_unanswered_cancels()

    def on_child_exited(self, msg: ChildActorExited, sender: Any) -> None:
        self._check_workers(list(self.processes), "child_exited")

    def _check_workers(self, worker_ids: list[WorkerID], source: str) -> None:
        """Handle the death of every worker among ``worker_ids`` whose process has ended
        (``source``: what made us look, for the log)."""
        died = False
        for worker_id in worker_ids:
            process = self.processes.get(worker_id)
            exitcode = process.exitcode if process is not None else None  # reaps it if it ended
            if exitcode is None:
                continue
            del self.processes[worker_id]
            for fd in [fd for fd, wid in self.pidfds.items() if wid == worker_id]:
                del self.pidfds[fd]
                os.close(fd)
            running = take_running_task(self._node().session_dir, worker_id)
            held = self.workers.remove(worker_id)  # what it took returns to the pool
            if held is not None:  # not a worker we had stopped on purpose
                self._worker_died(held, running, exit_description(exitcode), source)
                died = True
        if died:
            self._dispatch()

    def _worker_died(self, held: Held, running_id: TaskID | None, how: str, source: str) -> None:
        """Tell the GCS of a dead actor; retry (or fail) the task the worker was running
        (``running_id``, from its running-task slot) and requeue the others it held: those it had
        not started, and those it finished whose results died with it."""
        node, worker = self._node(), held.worker
        self.log.warning(
            "worker_died",
            worker_id=worker.worker_id,
            pid=worker.pid,
            how=how,
            noticed_by=source,
            tasks=[s.task_id for s in (held.running, *held.unstarted) if s is not None],
        )
        self.post(node.gcs, am.WorkerDied(worker.worker_id, node.node_id, f"pid {worker.pid} {how}"))
        now = time.monotonic()
        for owner in self.workers.lease_contacts(worker, now, RESULT_GRACE + self.lease_idle_timeout):
            self.post(owner, tm.LeaseLost(worker.worker_id, f"pid {worker.pid} {how}", running_id))
        for owner, task_ids in self.recent.maybe_lost(worker.worker_id, time.monotonic()):
            self.log.warning("task_results_maybe_lost", worker_id=worker.worker_id, task_ids=task_ids)
            self.post(
                owner,
                tm.TasksLost(node.node_id, tuple(task_ids), f"worker {worker.worker_id} died", finished=True),
            )
        if worker.actor_id is not None:
            if held.last_state is not WorkerState.EXITING:
                reason = (
                    "killed by ray.kill()"
                    if worker.actor_id in self.killed_actors
                    else f"pid {worker.pid} {how}"
                )
                self.post(node.gcs, am.ActorWorkerDied(worker.actor_id, node.node_id, reason))
            self.killed_actors.discard(worker.actor_id)
            return
        assigned = [s for s in (held.running, *held.unstarted) if s is not None]
        # Tasks a forced cancel failed already: we killed the worker, which costs no task a retry.
        cancelled = {s.task_id for s in assigned if s.task_id in self.force_cancelled}
        self.force_cancelled -= cancelled
        self.cancels_passed -= cancelled
        running = None if cancelled else next((s for s in assigned if s.task_id == running_id), None)
        self._requeue([s for s in assigned if s is not running and s.task_id not in cancelled])
        if running is None:
            return
        if running.task_id in self.cancels_passed:  # cancelled as it died: not run again
            self.cancels_passed.discard(running.task_id)
            self._fail(running, exceptions.TaskCancelledError(running.task_id), worker_died=True)
            return
        if self._orphaned(running):
            return
        if (retry := take_retry(running)) is not None:
            self.log.warning(
                "task_retry_worker_died",
                task_id=retry.task_id,
                attempt=retry.attempt,
                worker_id=worker.worker_id,
            )
            self.queue.push_front([retry])
        else:
            self.log.warning("task_failed_worker_died", task_id=running.task_id, worker_id=worker.worker_id)
            self._fail(
                running,
                exceptions.WorkerCrashedError(
                    f"The worker {worker.worker_id} (pid {worker.pid}) running task {running.task_id} "
                    f"({running.function_name}) died ({how}); retries exhausted "
                    f"({running.attempt}/{running.max_retries})."
                ),
                worker_died=True,
            )

    def on_kill_actor_worker(self, msg: am.KillActorWorker, sender: Any) -> None:
        for worker in self.workers:
            if worker.actor_id == msg.actor_id:
                self.killed_actors.add(msg.actor_id)
                self.log.info("actor_worker_killing", actor_id=msg.actor_id, pid=worker.pid)
                os.kill(worker.pid, signal.SIGKILL)
                self._check_workers([worker.worker_id], "kill")
                return

    def on_actor_exiting(self, msg: am.ActorExiting, sender: Any) -> None:
        """The actor called exit_actor(): it is dead for good; stop its worker."""
        node = self._node()
        worker = self.workers.get(msg.worker_id)
        if worker is None or worker.actor_id is None:
            return
        self.workers.mark_exiting(worker)
        self.log.info("actor_exiting", actor_id=worker.actor_id, worker_id=worker.worker_id)
        self.post(
            node.gcs,
            am.ActorWorkerDied(
                worker.actor_id,
                node.node_id,
                "The actor exited on purpose: exit_actor() was called",
                final=True,
            ),
        )
        self.send(worker.address, ActorExitRequest())

    # ---- placement group bundles (babyray.actors.bundles) -----------------------------

    def on_prepare_bundles(self, msg: pm.PrepareBundles, sender: Any) -> None:
        ok = self.bundles.prepare(msg.pg_id, dict(msg.bundles), self.pool.available)
        self.log.info("bundles_prepared" if ok else "bundles_refused", pg_id=msg.pg_id, bundles=msg.bundles)
        if not ok:  # leased workers' resources may be what is missing when it is tried again
            for worker in self.workers.to_reclaim():
                self.post(worker.address, tm.ReclaimLease())
        self.post(sender, pm.BundlesPrepared(msg.pg_id, self._node().node_id, ok))

    def on_commit_bundles(self, msg: pm.CommitBundles, sender: Any) -> None:
        if self.bundles.commit(msg.pg_id, self.pool.total, self.pool.available):
            self._send_heartbeat()
            self._dispatch()

    def on_return_bundles(self, msg: pm.ReturnBundles, sender: Any) -> None:
        """Free the group's bundles; its tasks fail and the workers running in it are killed."""
        if not self.bundles.give_back(msg.pg_id, self.pool.total, self.pool.available):
            return
        error = exceptions.TaskPlacementGroupRemoved(f"placement group {msg.pg_id} was removed")
        for spec in self.queue.take_all(lambda s: uses_group(s.resources, msg.pg_id)):
            self._fail(spec, error)
        doomed = []
        for worker in self.workers:
            if uses_group(worker.held, msg.pg_id) and worker.pid:
                self.workers.disown_held(worker)
                if worker.actor_id is not None:
                    self.killed_actors.add(worker.actor_id)
                else:
                    self.workers.mark_exiting(
                        worker
                    )  # takes no task, even if its last one reports done first
                    for spec in worker.assigned:
                        self._fail(spec, error)
                    if worker.assigned:  # what it holds at its death: no retry, no requeue
                        self.force_cancelled.add(worker.assigned[0].task_id)
                    self.workers.finish(
                        worker, {s.task_id for s in worker.assigned[1:]}
                    )  # none runs elsewhere
                self.log.info(
                    "bundle_worker_killing", pg_id=msg.pg_id, worker_id=worker.worker_id, pid=worker.pid
                )
                os.kill(worker.pid, signal.SIGKILL)
                doomed.append(worker.worker_id)
        self._check_workers(doomed, "kill")
        self._send_heartbeat()
        self._dispatch()

    # ---- the worker table (babyray list workers) --------------------------------------

    def on_get_workers(self, msg: sm.GetWorkers, sender: Any) -> None:
        node_id = self._node().node_id
        workers = tuple(
            {
                "worker_id": w.worker_id,
                "node_id": node_id,
                "pid": w.pid or None,
                "state": w.state.value,
                "actor_id": w.actor_id,
                "running_task_id": w.assigned[0].task_id if w.assigned else None,
                "num_queued": max(0, len(w.assigned) - 1),
                "started_at": w.started_at,
                "address": w.address if w.state is not WorkerState.STARTING else None,
            }
            for w in self.workers
        )
        self.reply(msg, sender, sm.WorkerTable(msg.req_id, node_id, workers))

    # ---- a restarted head -------------------------------------------------------------

    def on_gcs_restarted(self, msg: cm.GcsRestarted, sender: Any) -> None:
        """Send to the restarted head's new GCS and global scheduler from now on: register
        again (same node id: the GCS recovered it) and tell the store and the workers."""
        node = self.node = dataclasses.replace(
            self._node(), gcs=msg.gcs, global_scheduler=msg.global_scheduler
        )
        self.log.warning("gcs_moved_reregistering", node=node.node_id)
        self.post(
            msg.gcs, cm.RegisterNode(node.node_id, node.address, self.myAddress, node.store, self.pool.total)
        )
        self.post(node.store, msg)
        for worker in self.workers:
            self.post(worker.address, msg)
        self._send_heartbeat()

    # ---- heartbeats ------------------------------------------------------------------

    def on_heartbeat_timer(self, msg: WakeupMessage, sender: Any) -> None:
        self._send_heartbeat()
        self._stop_idle_workers()

    def _maybe_heartbeat(self) -> None:
        if time.monotonic() - self.last_heartbeat > 0.02:
            self._send_heartbeat()

    def _send_heartbeat(self) -> None:
        self.last_heartbeat = time.monotonic()
        node = self._node()
        self.post(
            node.gcs,
            cm.Heartbeat(
                node.node_id,
                dict(self.pool.available),
                len(self.queue),
                len(self.workers),
                dict(self.pool.total),
            ),
        )

    def _stop_idle_workers(self) -> None:
        now = time.monotonic()
        idle = [w for w in self.workers.idle() if now - w.idle_since > self.idle_timeout]
        idle.sort(key=lambda w: w.env_key == "")  # workers of a runtime_env go first
        for worker in idle[: max(0, self.workers.pool_size() - self.pool.cpus())]:
            self.log.info("worker_idle_stopping", worker_id=worker.worker_id)
            self._stop_worker(worker)

    def _stop_worker(self, worker: WorkerRecord) -> None:
        self.workers.remove(worker.worker_id)  # its process's end is expected: not a death
        self.send(worker.address, ActorExitRequest())

    def on_exit(self, msg: ActorExitRequest, sender: Any) -> None:
        """Stopping: Thespian asks each worker to exit and waits for all of them; a worker
        that cannot answer (user code holding the GIL, a stopped process) is killed after
        ``WORKER_STOP_GRACE`` seconds, so the node always ends."""
        pidfds = []
        for process in self.processes.values():
            try:
                pidfds.append(os.pidfd_open(process.pid))
            except (OSError, TypeError):  # already gone
                pass
        threading.Thread(
            target=_kill_after, args=(pidfds, WORKER_STOP_GRACE), name="babyray-worker-stop", daemon=True
        ).start()
        self.log.info("local_scheduler_stopping", workers=len(pidfds))


def _kill_after(pidfds: list[int], seconds: float) -> None:
    """SIGKILL the processes of ``pidfds`` still running after ``seconds``; close the fds."""
    time.sleep(seconds)
    for fd in pidfds:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:  # exited in time
            pass
        finally:
            os.close(fd)

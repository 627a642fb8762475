"""The worker actor: one process that runs tasks (and, later, hosts one user actor).

The local scheduler creates workers and sends them ExecuteTasks. User code runs on an
executor thread, never on the actor's message loop, so a task can submit tasks, ``get``,
``put`` and ``wait`` while the worker keeps receiving replies. When the task blocks in
``get`` the worker tells its scheduler (which lends its CPU to another worker) and hands
back the tasks queued behind it, so recursion cannot deadlock. After a task it may stay
leased to the task's owner, which then pushes tasks straight to it (``worker_lease``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import inspect
import io
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from datetime import timedelta
from typing import Any, ContextManager

from babyray import config, exceptions, log, serialization
from babyray.actors.actor_host import ActorHost
from babyray.actors.base import PartActor
from babyray.actors.batching import address_key
from babyray.actors.generator_returns import async_generator_method, generator_returns
from babyray.actors.loop_handover import LoopHandover
from babyray.actors.running_task import RunningTaskSlot
from babyray.actors.worker_lease import AfterTask, HeldLease, WorkerLease
from babyray.api import context, task_interrupts
from babyray.api.actor import ActorExit
from babyray.api.arguments import argument_values
from babyray.api.core import CoreClient
from babyray.api.runtime_context import cancel_requested
from babyray.api.task_events import HIDDEN
from babyray.api.task_interrupts import TaskInterrupts
from babyray.ids import FunctionID, TaskID
from babyray.protocol import actors as am
from babyray.protocol import cluster as cm
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm
from babyray.runtime_env import node_setup
from babyray.session import register_pid
from babyray.task_failure import failed_returns

# How long the loop waits in its turn for the result of a task it handed to an idle executor
# (PartActor.wait_in_turn): a result ready by then leaves in the same turn.
IN_TURN_WAIT = 0.002
# How long a sync actor's call runs on the loop thread before a standby thread takes the loop
# over (LoopHandover); one that waits for a value hands it over at once.
LOOP_HANDOVER_AFTER = 0.002
MAX_UNSENT_RESULTS = 64  # wake the loop at least this often while tasks keep coming
ENV_FAILED_IDLE_EXIT = 1.0  # seconds a worker whose runtime_env failed waits idle before it exits
EXIT_RESULTS_GRACE = 0.2  # seconds exit_actor() leaves the results sent before it to travel
# Signals that must kill the process: Thespian catches them in Python, where a segfault
# would return to the faulting instruction forever.
FATAL_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT)


def die_on_fatal_signals(log_path: str | None) -> None:
    """Restore the default action of fatal signals, after ``faulthandler`` writes the Python
    stack of every thread to ``log_path`` (if given)."""
    faulthandler.disable()  # enabled in the parent (pytest does) it would keep Thespian's handlers
    for sig in FATAL_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    if log_path is not None:
        faulthandler.enable(open(log_path, "a"), all_threads=True)


def print_whole_lines() -> None:
    """Make the worker's ``sys.stdout`` and ``sys.stderr`` write each line as it ends, in one
    write: what a task prints shows at once (block-buffered, it showed when the worker exited),
    and lines of workers sharing the driver's terminal or pipe do not mix mid-line (unbuffered,
    as with ``PYTHONUNBUFFERED``, ``print`` writes the text and its newline separately)."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        try:
            inherited = isinstance(stream, io.TextIOWrapper) and stream.fileno() == fd
        except (OSError, ValueError):  # no file descriptor under it
            inherited = False
        if not inherited:
            continue  # not the stream the process inherited (a harness's capture): leave it
        stream.flush()
        setattr(
            sys,
            name,
            io.TextIOWrapper(
                open(fd, "wb", closefd=False),
                encoding=stream.encoding,
                errors=stream.errors,
                line_buffering=True,
            ),
        )


def exit_status(code: object) -> int:
    """The process exit status ``sys.exit(code)`` gives."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


class _ActorThreadTransport:
    """Sends through the worker actor: directly from the thread running its loop, via the wake
    pipe from others (and from the loop thread while it runs an actor's call)."""

    def __init__(self, actor: "Worker") -> None:
        self.actor = actor
        self.loop_thread = threading.get_ident()

    def send(self, dest: Any, msg: Any) -> None:
        handover = self.actor.handover
        if threading.get_ident() == (self.loop_thread if handover is None else handover.loop_thread):
            self.actor.post(dest, msg)
        else:
            self.actor.post_from_thread(dest, msg)


class ArgumentFailed(Exception):
    """A task's argument is an error (its task failed, or the object is lost): the task's
    function is not called."""

    def __init__(self, error: exceptions.RayError) -> None:
        super().__init__(str(error))
        self.error = error


class Worker(PartActor):
    component = "worker"
    handlers = {
        tm.WorkerStart: "on_start",
        tm.ExecuteTasks: "on_execute",
        tm.CancelTask: "on_cancel",
        tm.StealTasks: "on_steal",
        tm.ReclaimLease: "on_reclaim_lease",
        cm.GcsRestarted: "on_gcs_restarted",
    }
    timers = {"lease": "on_lease_timer"}
    # Set by on_start: WorkerStart is the first message a worker gets.
    start_msg: tm.WorkerStart
    core: CoreClient
    executor: threading.Thread

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks: deque[vm.TaskSpec] = deque()
        self.queue_lock = threading.Condition()
        self.blocked = False
        self.retiring = False  # ran a function's max_calls-th time: takes no more tasks (_retire)
        self.runs: dict[FunctionID, int] = {}  # runs here of each function with a max_calls limit
        self.running: vm.TaskSpec | None = None
        self.inline: vm.TaskSpec | None = None  # the actor call running on the loop thread
        self.executor_waiting = False  # the (only) executor thread waits for a task
        self.exiting = False  # the actor called exit_actor(): no more calls run
        self.doomed = False  # a forced cancel of its running task: it takes nothing until killed
        self.interrupts = TaskInterrupts(self._wake_waiting_get)
        self.handover: LoopHandover | None = None  # made by the first call run on the loop thread
        self.cancelled: set[TaskID] = set()
        self.functions: dict[str, Any] = {}
        self.actor: ActorHost | None = None
        self.unsent = 0  # results posted without waking the loop (more tasks were queued)
        self.started: dict[str, float] = {}  # task id -> when it started running, until reported
        self.unlogged: deque[dict[str, Any]] = deque()  # task_executed fields, for after_turn
        self.env_error: exceptions.RuntimeEnvSetupError | None = None  # its runtime_env failed to install
        self.leases = WorkerLease(0.0)  # under queue_lock
        self.lease_timer_armed = False

    def on_start(self, msg: tm.WorkerStart, sender: Any) -> None:
        self.start_msg = msg
        node_setup.apply_env_vars(msg.runtime_env)
        log.configure(os.path.join(msg.session_dir, "logs"), "worker", msg.node_id)
        self.log = log.get_logger("worker").bind(worker_id=msg.worker_id)
        die_on_fatal_signals(log.configured_path())
        print_whole_lines()
        register_pid(msg.session_dir, "worker")
        self.running_slot = RunningTaskSlot(msg.session_dir, msg.worker_id)
        self.enable_thread_posts()
        self.core = CoreClient(
            _ActorThreadTransport(self),
            msg.worker_id,
            self.myAddress,
            msg.node_id,
            msg.scheduler,
            msg.store,
            msg.gcs,
            msg.job_id,
        )
        self.core.on_block = self._on_block
        self.core.requests.on_wait = self._hand_over_loop
        settings = config.Settings(msg.config)
        self.core.router.locality = settings.scheduling_policy == "locality"
        self.core.io.inline_threshold = settings.inline_threshold
        self.core.on_unblock = self._on_unblock
        self.core.objects.interrupted = self.interrupts.held_back
        task_interrupts.install(self.interrupts)
        self.leases = WorkerLease(settings.lease_idle_timeout)
        context.set_worker_runtime(context.WorkerRuntime(self.core, msg))
        self.executor = threading.Thread(target=self._run_in_env, name="babyray-executor", daemon=True)
        self.executor.start()
        self.log.info("worker_started")
        self.post(msg.scheduler, tm.WorkerReady(msg.worker_id, os.getpid()))

    def intercept(self, msg: Any) -> bool:
        core = getattr(self, "core", None)  # None before WorkerStart
        return core is not None and core.handle(msg)

    # ---- task queue ------------------------------------------------------------------

    def on_execute(self, msg: tm.ExecuteTasks, sender: Any) -> None:
        if msg.lease_id:
            self._on_push(msg.specs[0], msg.lease_id)
            return
        if self._run_on_loop_thread(msg):
            return
        if self.actor is not None and self.actor.groups:
            msg = tm.ExecuteTasks(self._run_concurrency_groups(self.actor, msg.specs), msg.lease)
        with self.queue_lock:
            if self.blocked or self.retiring:  # our task waits in get, or we leave: back they go
                self.post(self.start_msg.scheduler, tm.ReturnTasks(self.start_msg.worker_id, msg.specs))
                return
            if msg.lease:
                self.leases.allow(msg.specs)
            for spec in msg.specs:  # before the executor can run and report one (which discards it)
                self._task_event(spec, "scheduled")
            idle = self._idle()
            since = self.thread_wakes()  # before the executor can take the task
            self.tasks.extend(msg.specs)
            self.queue_lock.notify()
        if msg.lease:
            self._arm_lease_timer(self.leases.idle_timeout)
        if idle and len(msg.specs) == 1:
            self.wait_in_turn(IN_TURN_WAIT, since)

    def _idle(self) -> bool:
        """Whether the executor has nothing to run or running (under the queue lock)."""
        return (
            not self.tasks
            and self.running is None
            and self.inline is None
            and not self.blocked
            and not self.retiring
            and not self.exiting
            and not self.doomed
        )

    def _run_on_loop_thread(self, msg: tm.ExecuteTasks) -> bool:
        """Run a sync actor's call here, on the loop thread, if nothing else waits or runs:
        its result leaves in this turn, with no hand-off to the executor thread and back. The
        loop is handed over to a standby thread if the call waits for a value or runs long
        (``LoopHandover``); calls arriving meanwhile queue for the executor thread."""
        actor = self.actor
        if actor is None or msg.lease or len(msg.specs) != 1 or self.messages_left:
            return False  # a batch's calls queue: those after one whose loop was handed over would
            # otherwise run after the calls the standby thread received meanwhile
        spec = msg.specs[0]
        if spec.actor_creation or spec.task_id in self.cancelled or not actor.runs_on_loop_thread(spec):
            return False
        if self.handover is None:
            self.handover = LoopHandover(self._myRef, self.wake_from_thread, LOOP_HANDOVER_AFTER)
        if not self.handover.usable():
            return False
        with self.queue_lock:
            if not (self._idle() and self.executor_waiting):
                return False
            self.inline = spec
        self.running_slot.set(spec.task_id)  # (no "scheduled" event: "running" replaces it at once)
        try:
            returns = self.handover.run(lambda: self._execute_unless_exit(spec))
        finally:
            self.running_slot.clear()
            with self.queue_lock:
                self.inline = None
                if self.tasks:  # queued meanwhile, for the executor thread
                    self.queue_lock.notify()
        if returns is not None:  # behind what the call sent (a generator's items)
            self.post_behind_thread_posts(spec.owner, tm.TaskResults((self._task_result(spec, returns),)))
        return True

    def on_steal(self, msg: tm.StealTasks, sender: Any) -> None:
        with self.queue_lock:
            stolen = [self.tasks.pop() for _ in range(min(msg.count, len(self.tasks)))]
            stolen = self._hand_back(stolen, "pushed_task_stolen")
        self._drop_scheduled_events(stolen)
        if stolen:
            self.post(
                self.start_msg.scheduler, tm.ReturnTasks(self.start_msg.worker_id, tuple(reversed(stolen)))
            )

    # ---- the lease (babyray.actors.worker_lease) ---------------------------------------

    def _on_push(self, spec: vm.TaskSpec, lease_id: int) -> None:
        """A task its owner pushed under lease ``lease_id``: run it if that lease holds and
        nothing else waits here; else the owner learns the lease ended and submits the task to
        the scheduler itself (sent from here, it would be lost if this worker died at once)."""
        with self.queue_lock:
            accepted = self.leases.accept_push(spec, lease_id, self._idle())
            since = self.thread_wakes()  # before the executor can take the task
            if accepted:
                self._task_event(spec, "scheduled")
                self.tasks.append(spec)
                self.queue_lock.notify()
            ended = None if accepted else self.leases.refuse_push(spec)
        if accepted:
            self.wait_in_turn(IN_TURN_WAIT, since)
            return
        self.log.info("lease_push_refused", task_id=spec.task_id, lease_id=lease_id)
        if ended is not None:
            self._lease_ended(ended, "push_refused", spec.task_id)
        else:
            self.post_from_thread(
                spec.owner, tm.LeaseEnded(self.start_msg.worker_id, lease_id, spec.task_id), wake=False
            )

    def on_reclaim_lease(self, msg: tm.ReclaimLease, sender: Any) -> None:
        with self.queue_lock:
            ended = self.leases.reclaim()
        if ended is not None:
            self._lease_ended(ended, "reclaimed")

    def on_lease_timer(self, msg: Any, sender: Any) -> None:
        self.lease_timer_armed = False
        with self.queue_lock:
            ended, delay = self.leases.expire(time.monotonic())
        if ended is not None:
            self._lease_ended(ended, "idle")
        if delay is not None:
            self._arm_lease_timer(delay)

    def _arm_lease_timer(self, delay: float) -> None:
        if not self.lease_timer_armed and delay > 0:
            self.lease_timer_armed = True
            self.wakeupAfter(timedelta(seconds=delay), payload="lease")

    def _lease_ended(self, lease: HeldLease, why: str, refused: TaskID | None = None) -> None:
        """Tell the owner (push no more; ``refused``: a push not run) and the scheduler (its
        resources are free). Sent, from any thread, behind what the executor posted before the
        lease ended (the grant, and the done message that took the lease): the owner and the
        scheduler rely on that order."""
        start = self.start_msg
        self.log.info("lease_ended", lease_id=lease.lease_id, why=why)
        self.post_from_thread(
            lease.owner, tm.LeaseEnded(start.worker_id, lease.lease_id, refused), wake=False
        )
        self.post_from_thread(start.scheduler, tm.LeaseReturned(start.worker_id, lease.owner))

    def _hand_back(self, specs: list[vm.TaskSpec], why: str) -> list[vm.TaskSpec]:
        """Tasks leaving unrun for the scheduler (under the queue lock): a pushed one among them
        ends its lease and goes back to its owner instead (the scheduler never knew it)."""
        ended = self.leases.handed_back(specs)
        if ended is None or ended.in_flight is None:
            return specs
        pushed = ended.in_flight.task_id
        self._drop_scheduled_events([ended.in_flight])
        self._lease_ended(ended, why, pushed)
        return [s for s in specs if s.task_id != pushed]

    def _grant(self, lease: HeldLease) -> tm.LeaseGrant:
        start = self.start_msg
        return tm.LeaseGrant(
            start.worker_id,
            self.myAddress,
            lease.key,
            lease.lease_id,
            start.node_id,
            self.leases.idle_timeout,
        )

    def on_gcs_restarted(self, msg: cm.GcsRestarted, sender: Any) -> None:
        """From the local scheduler: the head restarted; its GCS has a new address."""
        assert self.start_msg is not None and self.core is not None, "sent to a started worker only"
        self.start_msg = dataclasses.replace(self.start_msg, gcs=msg.gcs)
        self.core.retarget(msg.gcs)
        runtime = context.runtime_or_none()
        if isinstance(runtime, context.WorkerRuntime):
            runtime.gcs = msg.gcs
        self.log.info("gcs_moved")

    def on_cancel(self, msg: tm.CancelTask, sender: Any) -> None:
        """Skip a queued task; interrupt a running one, or, for a forced cancel, have the
        scheduler fail it and kill us (``CancelRunningTask``; we take no task meanwhile). A
        forced cancel the scheduler passed on that finds its task not running (queued, or
        finished as the cancel came) it answers with ``ForceCancelNotRunning``: the task after
        it must not die with it. In an actor, only async calls are interrupted; sync ones may
        check ``is_canceled()``, as in Ray. From an owner that pushed the task here: one not here
        (the lease had ended) is the scheduler's to cancel."""
        start = self.start_msg
        self.cancelled.add(msg.task_id)
        cancel_requested(msg.task_id)
        if msg.recursive:  # first: a forced cancel kills us once the scheduler hears of it
            self.core.tasks.cancel_children(msg.task_id, msg.force)
        if self.actor is not None:
            self.actor.cancel(msg.task_id)
            return
        with self.queue_lock:
            queued = any(s.task_id == msg.task_id for s in self.tasks)
            running = (
                self.running if self.running is not None and self.running.task_id == msg.task_id else None
            )
            running = running or (None if queued else self.leases.pushed(msg.task_id))
            if msg.force and running is not None:
                self.doomed = True
                self.leases.reclaim()  # no more pushes: it is about to die
        from_scheduler = address_key(sender) == address_key(start.scheduler)
        if msg.force and running is not None:
            self.post(start.scheduler, tm.CancelRunningTask(start.worker_id, running))
        elif running is None and not queued and not from_scheduler:
            self.cancelled.discard(msg.task_id)
            self.post(start.scheduler, msg)
        elif msg.force and from_scheduler:
            self.post(start.scheduler, tm.ForceCancelNotRunning(start.worker_id, msg.task_id))
        elif running is not None:
            self.interrupts.interrupt(msg.task_id)

    def _hand_over_loop(self) -> None:
        """An actor's call running on the loop thread is about to wait for a message: another
        thread must run the loop (no-op on other threads)."""
        if self.handover is not None:
            self.handover.hand_over()

    def _on_block(self) -> None:
        self._hand_over_loop()
        if threading.current_thread() is not self.executor or self.actor is not None:
            return
        with self.queue_lock:
            self.blocked = True
            returned = self._hand_back(list(self.tasks), "pushed_task_handed_back")
            self.tasks.clear()
        self._drop_scheduled_events(returned)
        self.post_from_thread(
            self.start_msg.scheduler, tm.WorkerBlocked(self.start_msg.worker_id, tuple(returned))
        )

    def _on_unblock(self) -> None:
        if threading.current_thread() is not self.executor or not self.blocked:
            return
        with self.queue_lock:
            self.blocked = False
        self.post_from_thread(self.start_msg.scheduler, tm.WorkerUnblocked(self.start_msg.worker_id))

    # ---- executing -------------------------------------------------------------------

    def _run_in_env(self) -> None:
        """Install the runtime_env's packages (fetched on this thread: replies come through
        the loop), then run tasks; if that fails, the tasks sent here fail with the reason
        and the worker exits once idle, so the next task gets a worker that tries again."""
        start = self.start_msg
        try:
            node_setup.install_packages(
                start.runtime_env,
                start.session_dir,
                lambda uri: self.core.fetch_function(FunctionID(uri), node_setup.SETUP_TIMEOUT),
            )
        except Exception as exc:
            self.log.warning("runtime_env_setup_failed", error=traceback.format_exc())
            self.env_error = exceptions.RuntimeEnvSetupError(
                f"Failed to set up the runtime_env {start.runtime_env} on node {start.node_id}: "
                f"{type(exc).__name__}: {exc}"
            )
            threading.Thread(target=self._exit_when_idle, name="babyray-env-failed", daemon=True).start()
        self._run_tasks()

    def _exit_when_idle(self) -> None:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < ENV_FAILED_IDLE_EXIT:
            time.sleep(0.1)
            with self.queue_lock:
                if self.tasks or self.running is not None:
                    idle_since = time.monotonic()
        self.log.info("worker_exiting_runtime_env_failed")
        os._exit(0)

    def _run_tasks(self) -> None:
        while True:
            with self.queue_lock:
                while not self.tasks or self.inline is not None or self.exiting or self.doomed:
                    self.executor_waiting = True
                    self.queue_lock.wait()
                self.executor_waiting = False
                spec = self.tasks.popleft()
                if self.actor is None and not spec.actor_creation and spec.task_id not in self.cancelled:
                    self.running = spec  # under the lock: a cancel finds it queued or running
            if spec.task_id in self.cancelled:
                self._report(spec, self._error_returns(spec, exceptions.TaskCancelledError(spec.task_id)))
                continue
            if spec.actor_creation:
                self._create_actor(spec)
                continue
            if self.actor is not None and self.actor.is_async and self._call_async(self.actor, spec):
                continue
            self.running = spec
            self.running_slot.set(spec.task_id)
            returns = self._execute_unless_exit(spec)
            if returns is None:
                return
            self.running_slot.clear()
            retiring = self._ran_last_call(spec)
            self.running = None
            self._report(spec, returns, retiring)
            del spec, returns  # idle workers must not keep the task's refs alive
            if retiring:
                self._retire()
                return

    def _ran_last_call(self, spec: vm.TaskSpec) -> bool:
        """Count a run of the task's function; whether it was its ``max_calls``-th here, so this
        worker retires (``retiring`` is set under the queue lock: no task is taken from now on)."""
        if not spec.max_calls or spec.actor_id is not None:
            return False
        runs = self.runs[spec.function_id] = self.runs.get(spec.function_id, 0) + 1
        if runs < spec.max_calls:
            return False
        with self.queue_lock:
            self.retiring = True
        return True

    def _retire(self) -> None:
        """Leave after a function's ``max_calls``-th run: the tasks waiting here go back to the
        scheduler (a pushed one's lease ends) and a lease held ends; the scheduler, told by
        ``WorkerTasksDone.retiring``, stops this worker once it holds nothing. This executor
        thread runs nothing more."""
        start = self.start_msg
        with self.queue_lock:
            queued = self._hand_back(list(self.tasks), "worker_retiring")
            self.tasks.clear()
            ended = self.leases.reclaim()
        self.log.info("worker_retiring", handed_back=len(queued))
        self._drop_scheduled_events(queued)
        if ended is not None:
            self._lease_ended(ended, "worker_retiring")
        if queued:
            self.post_from_thread(start.scheduler, tm.ReturnTasks(start.worker_id, tuple(queued)))

    def after_turn(self) -> None:
        """Log ``task_executed`` for the tasks that ran, once the turn has sent their results
        (``_execute`` queues the fields): the log line's JSON and write (~60 us a task here)
        no longer delay the result."""
        while self.unlogged:
            self.log.info("task_executed", **self.unlogged.popleft())

    def _task_result(self, spec: vm.TaskSpec, returns: tuple) -> tm.TaskResult:
        """The result message's entry for a task that ended here; forgets the task."""
        start = self.start_msg
        self.cancelled.discard(spec.task_id)
        if self.core.task_events is not None:
            self.core.task_events.discard(spec.task_id)  # the owner reports the outcome with our fields
        return tm.TaskResult(
            spec.task_id,
            returns,
            start.worker_id,
            start.node_id,
            started_at=self.started.pop(spec.task_id, 0.0),
        )

    def _report(self, spec: vm.TaskSpec, returns: tuple, retiring: bool = False) -> None:
        result = self._task_result(spec, returns)
        # With more tasks queued here, results wait for the next wake-up and leave together.
        with self.queue_lock:
            self.unsent += 1
            wake = not self.tasks or self.unsent >= MAX_UNSENT_RESULTS or retiring
            if wake:
                self.unsent = 0
            after = (
                self.leases.task_done(spec, not self.tasks and not self.doomed, time.monotonic())
                if spec.actor_id is None
                else None
            )
            if after is not None and (after.grant is not None or after.pushed):
                # Under the lock that decided the lease, so that the lease's end, decided on the
                # loop later, is posted after these (see _lease_ended).
                self._post_results(spec, result, after, wake)
                return
        self._post_results(spec, result, after, wake, retiring)

    def _post_results(
        self,
        spec: vm.TaskSpec,
        result: tm.TaskResult,
        after: AfterTask | None,
        wake: bool,
        retiring: bool = False,
    ) -> None:
        """Send a task's result to its owner (with the lease ``after`` grants) and, for a task the
        scheduler sent, its done message (``retiring``: the worker leaves after it); an actor
        call's result only (``after`` None)."""
        start = self.start_msg
        if after is None:  # actor method calls come straight from callers, not the scheduler
            self.post_from_thread(spec.owner, tm.TaskResults((result,)), wake=wake)
            return
        grant = self._grant(after.grant) if after.grant is not None else None
        self.post_from_thread(spec.owner, tm.TaskResults((result,), grant), wake=False)
        if after.pushed:  # its scheduler never knew the task: only a lease's end concerns it
            if after.ended is not None:
                self.log.info("lease_ended", lease_id=after.ended.lease_id, why="after_pushed_task")
                self.post_from_thread(start.scheduler, tm.LeaseReturned(start.worker_id, after.ended.owner))
            self.wake_from_thread()
            return
        if after.new and after.grant is not None:
            self.log.info("lease_taken", lease_id=after.grant.lease_id, task_id=spec.task_id)
        leased_to = spec.owner if after.new else None
        self.post_from_thread(
            start.scheduler,
            tm.WorkerTasksDone(start.worker_id, (spec.task_id,), leased_to, retiring),
            wake=wake,
        )

    # ---- hosting an actor ------------------------------------------------------------

    def _create_actor(self, spec: vm.TaskSpec) -> None:
        """Run the constructor; tell the GCS the actor is alive, or that it failed (and exit)."""
        start = self.start_msg
        actor_id = spec.actor_id
        assert actor_id is not None, "an actor creation task names its actor"
        context.actor_scheduling_strategy = spec.scheduling_strategy
        self._task_event(spec, "running", started_at=time.time())
        context.runtime().actor_id = actor_id
        try:
            self.actor = ActorHost(spec, self._function(spec.function_id))
            self.actor.construct(*self._argument_values(spec))
        except SystemExit as exc:
            self._on_sys_exit(spec, exc)
            return
        except Exception:  # the actor is dead: every call will raise ActorDiedError with this cause
            cause = traceback.format_exc()
            self.log.warning("actor_init_failed", actor_id=spec.actor_id, error=cause)
            self._task_event(
                spec, "failed", finished_at=time.time(), error_type="ActorInitError", traceback=cause
            )
            self.post_from_thread(start.gcs, am.ActorInitFailed(actor_id, cause))
            self.post_from_thread(start.scheduler, tm.WorkerTasksDone(start.worker_id, (spec.task_id,)))
            time.sleep(0.5)  # let the loop send both before the process goes
            os._exit(0)
        self.log.info("actor_started", actor_id=spec.actor_id, class_name=spec.function_name)
        self._task_event(spec, "finished", finished_at=time.time())
        self.post_from_thread(
            start.gcs,
            am.ActorStarted(
                actor_id, self.myAddress, start.node_id, start.worker_id, os.getpid(), spec.attempt
            ),
        )
        self.post_from_thread(start.scheduler, tm.WorkerTasksDone(start.worker_id, (spec.task_id,)))
        for _ in range(self.actor.executor_threads() - 1):
            threading.Thread(target=self._run_tasks, name="babyray-executor", daemon=True).start()

    def _run_concurrency_groups(self, actor: ActorHost, specs: tuple) -> tuple:
        """Hand a threaded actor's calls of a concurrency group to the group's threads (a call
        cancelled before it gets one fails without running); returns the other calls (the
        default group's)."""

        def cancelled(spec: vm.TaskSpec) -> None:
            self._report(spec, self._error_returns(spec, exceptions.TaskCancelledError(spec.task_id)))

        return tuple(
            spec for spec in specs if not actor.run_in_group(spec, self._execute_and_report, cancelled)
        )

    def _execute_and_report(self, spec: vm.TaskSpec) -> None:
        """Run a concurrency group's call on its pool thread (whose future nobody reads)."""
        returns = self._execute_unless_exit(spec)
        if returns is not None:
            self._report(spec, returns)

    def _execute_unless_exit(self, spec: vm.TaskSpec) -> tuple | None:
        """The task's returns (a cancelled task's error, if a non-forced cancel interrupted it);
        None if user code called ``sys.exit()`` or ``exit_actor()``, handled here."""
        try:
            return self._execute(spec)
        except KeyboardInterrupt:  # a non-forced cancel arrived while the task ran
            return self._error_returns(spec, exceptions.TaskCancelledError(spec.task_id))
        except SystemExit as exc:
            self._on_sys_exit(spec, exc)
            return None

    def _on_sys_exit(self, spec: vm.TaskSpec, exc: SystemExit) -> None:
        """exit_actor() ends the actor for good; any other ``sys.exit()`` in user code ends this
        process like a crash, as in Ray (the task is retried, the actor restarted)."""
        if isinstance(exc, ActorExit) and self.actor is not None:
            self._exit_actor(spec)
            return
        self.log.warning(
            "task_called_sys_exit", task_id=spec.task_id, function=spec.function_name, code=repr(exc.code)
        )
        os._exit(exit_status(exc.code))

    def _exit_actor(self, spec: vm.TaskSpec) -> None:
        """The method called exit_actor(): no result; the local scheduler ends the actor for good
        (its callers see it die) and stops this process. No more calls run here."""
        self.log.info("actor_exit_called", actor_id=spec.actor_id, task_id=spec.task_id)
        with self.queue_lock:
            self.exiting = True
            self.tasks.clear()
        # Results of earlier calls leave first, so callers have them before the death notice.
        self.wake_from_thread()
        time.sleep(EXIT_RESULTS_GRACE)
        assert spec.actor_id is not None, "only an actor's method calls exit_actor() here"
        self.post_from_thread(
            self.start_msg.scheduler, am.ActorExiting(self.start_msg.worker_id, spec.actor_id)
        )

    def _call_async(self, actor: ActorHost, spec: vm.TaskSpec) -> bool:
        """Start a call of an async actor on its loop (plain methods too, as in Ray); False if
        the actor has no such method or it is a plain generator (the executor thread runs those)."""
        assert spec.method_name is not None, "an actor call names its method"
        try:
            method = actor.method(spec.method_name)
        except AttributeError:
            return False
        if inspect.isasyncgenfunction(method):
            method = async_generator_method(self, spec, method)
        elif inspect.isgeneratorfunction(method):
            return False  # a plain generator method streams from the executor thread
        try:
            args, kwargs = self._argument_values(spec)
        except Exception as exc:
            self._report(spec, self._error_returns(spec, exc, traceback.format_exc()))
            return True

        def done(result: Any, error: BaseException | None) -> None:
            if isinstance(error, SystemExit):
                self._on_sys_exit(spec, error)
                return
            if error is not None:
                tb = "".join(traceback.format_exception(error))
                self._report(spec, self._error_returns(spec, error, tb))
                return
            try:
                values = self._split_returns(spec, result)
                returns = self.core.store_returns(spec.return_ids, values, (spec.owner_id, spec.owner))
            except Exception as exc:
                returns = self._error_returns(spec, exc, traceback.format_exc())
            self._report(spec, returns)

        actor.run_coroutine(spec, method, args, kwargs, done)
        return True

    def _task_event(self, spec: vm.TaskSpec, state: str, **fields: Any) -> None:
        """Tell the GCS where and when a task is queued or runs (merged with its owner's); nothing
        for an actor call with enable_task_events=False, hidden for such a task."""
        if not spec.task_events:
            if spec.actor_id is not None and not spec.actor_creation:
                return
            fields.update(HIDDEN)
        fields.update(
            name=spec.display_name,
            node_id=self.start_msg.node_id,
            worker_id=self.start_msg.worker_id,
            actor_id=spec.actor_id,
            attempt=spec.attempt,
        )
        if self.core.task_events is None:
            return
        if state in ("scheduled", "running"):
            self.core.task_events.add_provisional(spec.task_id, state, fields)
        else:
            self.core.task_events.discard(spec.task_id)
            self.core.task_events.add(spec.task_id, state, fields)

    def _drop_scheduled_events(self, specs: list[vm.TaskSpec]) -> None:
        """Tasks handed back to the scheduler run elsewhere: their "scheduled" event here,
        if not sent yet, would only reach the GCS late (after the task ended)."""
        if self.core.task_events is not None:
            for spec in specs:
                self.core.task_events.discard(spec.task_id)

    def user_code(self, spec: vm.TaskSpec) -> ContextManager[None]:
        """The block running ``spec``'s own code, where a cancel may interrupt it (a task's; an
        actor's call is never interrupted, as in Ray)."""
        if self.actor is not None:
            return contextlib.nullcontext()
        return self.interrupts.user_code(spec.task_id, self.cancelled)

    def _wake_waiting_get(self) -> None:
        """The running task was cancelled while in an API call: a get or wait stops waiting."""
        with self.core.objects.lock:
            self.core.objects.changed.notify_all()

    def _execute(self, spec: vm.TaskSpec) -> tuple:
        started = self.started[spec.task_id] = time.time()
        self._task_event(spec, "running", started_at=started)
        context.current_task.task_id = spec.task_id
        context.current_task.scheduling_strategy = spec.scheduling_strategy
        context.task_started(spec)
        try:
            function = self._callable(spec)
            context.current_task.function_module = getattr(function, "__module__", None)
            args, kwargs = self._arguments(spec)
            with self.user_code(spec):
                result = function(*args, **kwargs)
            returns = generator_returns(self, spec, result)
            if returns is None:
                values = self._split_returns(spec, result)
                owner = (spec.owner_id, spec.owner)  # borrows the refs the values contain
                returns = self.core.store_returns(spec.return_ids, values, owner)
            state = "finished"
        except (KeyboardInterrupt, SystemExit):
            raise
        except ArgumentFailed as failed:  # the function never ran: report the input's error
            returns = self._error_returns(
                spec,
                exceptions.RayTaskError.from_failed_input(
                    spec.function_name,
                    failed.error,
                    spec.task_id,
                    self.start_msg.node_id,
                    self.start_msg.worker_id,
                ),
            )
            state = "failed"
        except Exception as exc:  # the user's error travels to get() as RayTaskError
            returns = self._error_returns(spec, exc, traceback.format_exc())
            state = "failed"
        finally:
            context.current_task.task_id = context.current_task.scheduling_strategy = None
        self.unlogged.append(
            {
                "task_id": spec.task_id,
                "function": spec.function_name,
                "state": state,
                "start": started,
                "end": time.time(),
                "attempt": spec.attempt,
            }
        )
        return returns

    def _callable(self, spec: vm.TaskSpec) -> Any:
        if spec.method_name is None:
            return self._function(spec.function_id)
        if self.actor is None or self.actor.instance is None:
            raise exceptions.ActorDiedError(f"The actor {spec.actor_id} is not alive in this worker")
        return self.actor.method(spec.method_name)

    def _function(self, function_id: FunctionID) -> Any:
        if self.env_error is not None:
            raise self.env_error
        function = self.functions.get(function_id)
        if function is None:
            function = self.functions[function_id] = serialization.loads_function(
                self.core.fetch_function(function_id)
            )
        return function

    def _arguments(self, spec: vm.TaskSpec) -> tuple[list, dict]:
        """The task's positional and keyword argument values.

        Raises:
            ArgumentFailed: an argument is the error of a task that failed (or a lost object).
        """
        try:
            return self._argument_values(spec)
        except exceptions.RayError as exc:
            raise ArgumentFailed(exc) from exc

    def _argument_values(self, spec: vm.TaskSpec) -> tuple[list, dict]:
        """The task's positional and keyword argument values (refs in this node's store are
        pinned with one request)."""
        keys = list(spec.kwargs)
        values = argument_values(self.core, [*spec.args, *(spec.kwargs[k] for k in keys)])
        return values[: len(spec.args)], dict(zip(keys, values[len(spec.args) :], strict=True))

    @staticmethod
    def _split_returns(spec: vm.TaskSpec, result: Any) -> list:
        if spec.num_returns == 1:
            return [result]
        if spec.num_returns == 0:
            return [None]
        if not isinstance(result, (tuple, list)) or len(result) != spec.num_returns:
            raise ValueError(
                f"Task returned {type(result).__name__} but num_returns={spec.num_returns}: "
                f"return a tuple or list of {spec.num_returns} values"
            )
        return list(result)

    def _error_returns(self, spec: vm.TaskSpec, exc: BaseException, tb: str = "") -> tuple:
        if isinstance(exc, exceptions.RayError) and not tb:
            error: BaseException = exc
        else:
            start = self.start_msg
            error = exceptions.RayTaskError(
                spec.function_name, tb or repr(exc), exc, spec.task_id, start.node_id, start.worker_id
            )
        try:
            return failed_returns(spec, error)
        except TypeError:  # the user's exception does not pickle: keep its text
            return failed_returns(
                spec,
                exceptions.RayTaskError(
                    spec.function_name,
                    tb or repr(exc),
                    None,
                    spec.task_id,
                    self.start_msg.node_id,
                    self.start_msg.worker_id,
                ),
            )

    def on_exit(self, msg: Any, sender: Any) -> None:
        self.log.info("worker_stopping")

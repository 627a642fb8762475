"""A randomized soak test: a seeded mix of everything a driver does, with faults, on one cluster.

Each cycle starts a small cluster, runs random steps (task submissions, nested tasks, puts,
gets with timeouts, waits, soft and force cancels (of single tasks, of trees of nested tasks with
and without their subtasks, of tasks busy in put and get), actor calls, SIGKILLs of workers from
outside, tasks that end their worker with ``os._exit`` or ``sys.exit``, tasks that raise) and
shuts it down. After every step each ref that became ready is checked against what it must
be (a value or one of the expected errors) and no ref may be past its deadline; after every
cycle the CPUs are back in the pool and no process, segment or admin is left.

    BABYRAY_SOAK_SECONDS=600 BABYRAY_SOAK_SEED=1234 python -m pytest -q -s tests/test_soak.py

A failure names its seed and the steps that led to it, so ``BABYRAY_SOAK_SEED`` replays it
(the faults' timing still varies from run to run).
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import socket
import sys
import time

import numpy as np
from conftest import assert_session_clean

import babyray as ray
from babyray.exceptions import (
    GetTimeoutError,
    RayActorError,
    TaskCancelledError,
    WorkerCrashedError,
)

SECONDS = float(os.environ.get("BABYRAY_SOAK_SECONDS", "60"))  # CI: the whole test stays under 2 min
SEED = int(os.environ.get("BABYRAY_SOAK_SEED", str(int(time.time() * 1000) % 1_000_000)))
CPUS = 2
DEADLINE = 60.0  # seconds any ref may take to end, faults included (shared, loaded machine)
BIG = 1024 * 1024  # bytes of each array of the "big" step
IDLE_DEADLINE = 20.0  # seconds for the CPUs to come back once nothing runs
SHUTDOWN_DEADLINE = 2.0  # seconds shutdown may take, faults or not (about 0.5 s is typical)


@ray.remote(max_retries=5)
def square(x: int) -> int:
    return x * x


@ray.remote(max_retries=5)
def slow_square(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x * x


@ray.remote(max_retries=5)
def nested_sum(x: int, depth: int) -> int:
    """x + (x-1) + ... over ``depth`` tasks, each one ``get``-ting the next."""
    if depth == 0:
        return x
    return x + ray.get(nested_sum.remote(x - 1, depth - 1), timeout=DEADLINE)


@ray.remote(max_retries=5)
def churn_store(x: int) -> None:
    """Puts and gets 1 MB arrays until cancelled: a cancel lands inside ray.put or ray.get."""
    while True:
        assert int(ray.get(ray.put(np.full(BIG // 8, x, dtype=np.int64)), timeout=DEADLINE)[0]) == x


@ray.remote(max_retries=5)
def raise_value_error(x: int) -> None:
    raise ValueError(f"soak {x}")


@ray.remote(max_retries=5)
def big_array(x: int) -> np.ndarray:
    """1 MB: written into the store (a spare slot of the worker's channel, mostly)."""
    return np.full(BIG // 8, x, dtype=np.int64)


@ray.remote(max_retries=5)
def array_total(array: np.ndarray) -> int:
    return int(array.sum())


@ray.remote(max_retries=0)
def exit_worker(how: str) -> None:
    if how == "os._exit":
        os._exit(1)
    sys.exit(0)


@ray.remote(max_retries=2)
def exit_once_then_square(x: int, marker: str) -> int:
    """Ends its worker on the first attempt only: the retry returns x*x."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return x * x


@ray.remote(max_restarts=-1, max_task_retries=-1)
class Echo:
    def echo(self, x: int) -> int:
        return x


@dataclasses.dataclass
class Expected:
    ref: ray.ObjectRef
    what: str  # the step that made it
    values: tuple = ()  # acceptable values
    errors: tuple = ()  # acceptable error classes
    deadline: float = 0.0


class Soak:
    """One cycle's state: the refs to check, the step log, the actor."""

    def __init__(self, rng: random.Random, session_dir: str, tmp: str) -> None:
        self.rng, self.session_dir, self.tmp = rng, session_dir, tmp
        self.pending: list[Expected] = []
        self.log: list[str] = []
        self.actor = Echo.remote()
        self.n = 0

    def expect(self, ref: ray.ObjectRef, what: str, values: tuple = (), errors: tuple = ()) -> None:
        self.pending.append(Expected(ref, what, values, errors, time.monotonic() + DEADLINE))

    # ---- steps -------------------------------------------------------------------------

    def step(self) -> None:
        self.n += 1
        name = self.rng.choice(STEPS)
        self.log.append(f"{self.n}:{name}")
        getattr(self, f"step_{name}")()

    def step_tasks(self) -> None:
        for _ in range(self.rng.randint(1, 20)):
            x = self.rng.randint(0, 1000)
            self.expect(square.remote(x), "square", (x * x,))

    def step_nested(self) -> None:
        x, depth = self.rng.randint(10, 100), self.rng.randint(1, 3)
        self.expect(nested_sum.remote(x, depth), "nested", (sum(x - i for i in range(depth + 1)),))

    def step_put_get(self) -> None:
        value = [self.rng.random() for _ in range(self.rng.choice([1, 10, 20_000]))]
        ref = ray.put(value)
        assert ray.get(ref, timeout=DEADLINE) == value
        self.expect(square.remote(len(value)), "put-len", (len(value) ** 2,))

    def step_get_timeout(self) -> None:
        ref = slow_square.remote(7, 1.0)
        try:
            assert ray.get(ref, timeout=0.05) == 49
        except GetTimeoutError:
            pass
        self.expect(ref, "get-timeout", (49,))

    def step_wait(self) -> None:
        refs = [slow_square.remote(i, self.rng.choice([0, 0.05, 0.2])) for i in range(5)]
        ready, not_ready = ray.wait(
            refs, num_returns=self.rng.randint(1, 5), timeout=self.rng.choice([0, 0.1, 1])
        )
        assert len(ready) + len(not_ready) == 5 and set(ready).isdisjoint(not_ready)
        for i, ref in enumerate(refs):
            self.expect(ref, "wait", (i * i,))

    def step_cancel(self) -> None:
        force = self.rng.random() < 0.5
        ref = slow_square.remote(3, self.rng.choice([0, 0.5, 5]))
        time.sleep(self.rng.choice([0, 0.05, 0.3]))
        ray.cancel(ref, force=force)
        self.log[-1] += f"(force={force})"
        self.expect(ref, "cancel", (9,), (TaskCancelledError,))

    def step_cancel_tree(self) -> None:
        """Cancel a task blocked in get of its subtasks, with or without them (``recursive``)."""
        force, recursive = self.rng.random() < 0.5, self.rng.random() < 0.7
        x, depth = self.rng.randint(10, 100), self.rng.randint(1, 3)
        ref = nested_sum.remote(x, depth)
        time.sleep(self.rng.choice([0, 0.05, 0.3]))
        ray.cancel(ref, force=force, recursive=recursive)
        self.log[-1] += f"(force={force}, recursive={recursive})"
        self.expect(ref, "cancel-tree", (sum(x - i for i in range(depth + 1)),), (TaskCancelledError,))

    def step_cancel_busy(self) -> None:
        force = self.rng.random() < 0.3
        ref = churn_store.remote(self.rng.randint(0, 1000))
        time.sleep(self.rng.choice([0.01, 0.1, 0.3]))
        ray.cancel(ref, force=force)
        self.log[-1] += f"(force={force})"
        self.expect(ref, "cancel-busy", (), (TaskCancelledError,))

    def step_error(self) -> None:
        ref = raise_value_error.remote(1)
        self.expect(ref, "raise", (), (ValueError,))
        self.expect(square.remote(ref), "raise-arg", (), (ValueError,))

    def step_actor(self) -> None:
        for _ in range(self.rng.randint(1, 10)):
            x = self.rng.randint(0, 100)
            self.expect(self.actor.echo.remote(x), "actor", (x,), (RayActorError,))

    def step_big(self) -> None:
        """1 MB arrays through the store: a task's return summed by another task, and passed
        along a chain of actor calls first; some refs dropped at once."""
        x = self.rng.randint(0, 1000)
        array = big_array.remote(x)
        self.expect(array_total.remote(array), "big", (x * (BIG // 8),))
        for _ in range(self.rng.randint(1, 5)):
            array = self.actor.echo.remote(array)
        self.expect(array_total.remote(array), "big-chain", (x * (BIG // 8),), (RayActorError,))
        big_array.remote(x)  # dropped at once

    def step_kill_worker(self) -> None:
        pids = [p for p in _session_workers(self.session_dir)]
        for pid in self.rng.sample(pids, min(len(pids), self.rng.choice([1, 1, 2]))):
            try:
                os.kill(pid, signal.SIGKILL)
                self.log[-1] += f"(pid {pid})"
            except ProcessLookupError:
                pass

    def step_exit_in_task(self) -> None:
        how = self.rng.choice(["os._exit", "sys.exit"])
        self.log[-1] += f"({how})"
        self.expect(exit_worker.remote(how), "exit", (), (WorkerCrashedError,))
        marker = os.path.join(self.tmp, f"exit-once-{self.n}")
        self.expect(exit_once_then_square.remote(6, marker), "exit-once", (36,))

    # ---- invariants --------------------------------------------------------------------

    def check_ready(self, timeout: float = 0.0) -> None:
        """Check every ref that is ready; fail on any past its deadline."""
        if not self.pending:
            return
        refs = [e.ref for e in self.pending]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        ready_ids = {r.id for r in ready}
        still = []
        for e in self.pending:
            if e.ref.id in ready_ids:
                self._check_outcome(e)
            elif time.monotonic() > e.deadline:
                raise AssertionError(f"{e.what} ref {e.ref.id} did not end within {DEADLINE} s")
            else:
                still.append(e)
        self.pending = still

    def _check_outcome(self, e: Expected) -> None:
        try:
            value = ray.get(e.ref, timeout=DEADLINE)
        except Exception as exc:  # noqa: BLE001 - the class is what is checked
            if e.errors and isinstance(exc, e.errors):
                return
            raise AssertionError(
                f"{e.what} ref {e.ref.id}: unexpected {type(exc).__name__}: {exc}"[:2000]
            ) from exc
        assert value in e.values, f"{e.what} ref {e.ref.id}: got {value!r}, expected one of {e.values!r}"

    def drain(self) -> None:
        while self.pending:
            self.check_ready(timeout=1.0)

    def check_idle(self) -> None:
        total = ray.cluster_resources().get("CPU")
        deadline = time.monotonic() + IDLE_DEADLINE
        while ray.available_resources().get("CPU") != total and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ray.available_resources().get("CPU") == total, (
            f"CPUs not back in the pool when idle: {ray.available_resources()} of {ray.cluster_resources()}"
        )


STEPS = [
    "tasks",
    "tasks",
    "nested",
    "put_get",
    "get_timeout",
    "wait",
    "cancel",
    "cancel_tree",
    "cancel_busy",
    "error",
    "actor",
    "actor",
    "big",
    "kill_worker",
    "exit_in_task",
]


def _session_workers(session_dir: str) -> list[int]:
    found = []
    for name in os.listdir(os.path.join(session_dir, "pids")):
        try:
            with open(os.path.join(session_dir, "pids", name)) as f:
                if f.read().strip() == "worker":
                    found.append(int(name))
        except (OSError, ValueError):
            pass
    return found


def _admin_listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def _shutdown_clean(info: dict) -> float:
    """Shut the cycle's cluster down; check nothing is left; return how long shutdown took."""
    started = time.monotonic()
    ray.shutdown()
    took = time.monotonic() - started
    assert_session_clean(info["session_dir"])
    deadline = time.monotonic() + 3
    while _admin_listening(info["address"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _admin_listening(info["address"]), f"the cluster's admin outlived shutdown (took {took:.1f} s)"
    assert took < SHUTDOWN_DEADLINE, f"shutdown took {took:.1f} s"
    return took


def _fail(soak: Soak, cycle: int, exc: BaseException) -> None:
    raise AssertionError(
        f"soak failed: seed {SEED}, cycle {cycle}, steps {' '.join(soak.log)}\n"
        f"replay: BABYRAY_SOAK_SEED={SEED} python -m pytest -q -s tests/test_soak.py\n"
        f"{type(exc).__name__}: {exc}"
    ) from exc


def test_soak(tmp_path):
    rng = random.Random(SEED)
    print(f"\nsoak: seed {SEED}, {SECONDS:.0f} s (replay: BABYRAY_SOAK_SEED={SEED})", flush=True)
    end = time.monotonic() + SECONDS
    cycle = 0
    while time.monotonic() < end:
        cycle += 1
        info = ray.init(
            num_cpus=CPUS, temp_dir=str(tmp_path / f"c{cycle}"), object_store_memory=128 * 1024 * 1024
        ).address_info
        markers = tmp_path / f"markers{cycle}"  # each cycle's exit-once tasks end their worker once
        markers.mkdir()
        soak = Soak(rng, info["session_dir"], str(markers))
        try:
            for _ in range(rng.randint(10, 40)):
                soak.step()
                soak.check_ready()
                if time.monotonic() > end:
                    break
            soak.drain()
            soak.check_idle()
        except BaseException as exc:
            _fail(soak, cycle, exc)
        finally:
            try:
                took = _shutdown_clean(info)
            except AssertionError as exc:
                _fail(soak, cycle, exc)
        print(f"soak: cycle {cycle}: {soak.n} steps ok, shutdown {took:.2f} s", flush=True)
    assert cycle >= 1

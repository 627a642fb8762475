"""A sync actor's call on an idle worker runs on the worker's loop thread (no hand-off to the
executor thread); the loop goes to a standby thread when the call waits for a value or runs
long. These tests break that where it can break: a call that spins, blocks on replies other
than ``get``, exits or crashes while it holds the loop thread, and calls that arrive meanwhile."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import wait_for_file

import babyray as ray
from babyray.exceptions import RayActorError, RayTaskError, TaskCancelledError


@ray.remote
def square(x):
    return x * x


@ray.remote
class Recorder:
    def __init__(self):
        self.calls = []

    def on_main_thread(self):
        return threading.current_thread() is threading.main_thread()

    def record(self, caller, seq):
        self.calls.append((caller, seq))
        return seq

    def recorded(self):
        return self.calls

    def sleep(self, seconds):
        time.sleep(seconds)
        self.calls.append(("sleep", seconds))
        return seconds

    def spin_until_cancelled(self, started_file, seen_file):
        """Busy, no sleep: only a loop run by another thread can receive the cancel."""
        open(started_file, "w").close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ray.get_runtime_context().is_canceled():
                open(seen_file, "w").close()
                return "saw the cancel"
        return "never saw it"

    def waits_on_replies(self):
        refs = [square.remote(i) for i in range(20)]
        ready, _ = ray.wait(refs, num_returns=20, timeout=60)
        named = ray.get_actor("loop-thread-peer")
        return (
            len(ready),
            sum(ray.get(refs, timeout=60)),
            ray.get(ray.put("put"), timeout=60),
            ray.get(named.record.remote("peer", 1), timeout=60),
        )

    def set_alarm_handler(self):
        signal.signal(signal.SIGALRM, lambda signum, frame: None)

    def pid(self):
        return os.getpid()

    def die(self, how):
        if how == "sys_exit":
            sys.exit(3)
        if how == "os_exit":
            os._exit(4)
        if how == "segfault":
            ctypes.string_at(0)
        os.kill(os.getpid(), signal.SIGKILL)


@ray.remote(max_concurrency=2)
class Threaded:
    def on_main_thread(self):
        return threading.current_thread() is threading.main_thread()


@pytest.fixture(scope="module", autouse=True)
def _cluster(shared_cluster):
    yield shared_cluster


def test_a_sync_actors_call_runs_on_the_loop_thread_a_threaded_actors_does_not():
    assert ray.get(Recorder.remote().on_main_thread.remote(), timeout=60) is True
    assert ray.get(Threaded.remote().on_main_thread.remote(), timeout=60) is False


def test_a_spinning_call_still_receives_its_cancel(tmp_path):
    actor = Recorder.remote()
    started, seen = str(tmp_path / "started"), str(tmp_path / "seen")
    ref = actor.spin_until_cancelled.remote(started, seen)
    wait_for_file(started)
    ray.cancel(ref)
    wait_for_file(seen, timeout=30)
    with pytest.raises((TaskCancelledError, RayTaskError)):
        ray.get(ref, timeout=60)
    assert ray.get(actor.record.remote("after", 0), timeout=60) == 0


def test_an_actor_with_its_own_alarm_handler_runs_calls_on_the_executor_thread(tmp_path):
    """The hand-over's timer is SIGALRM: once user code takes that signal, calls leave the loop
    thread (a spinning call would otherwise hold the loop until it ends)."""
    actor = Recorder.remote()
    ray.get(actor.set_alarm_handler.remote(), timeout=60)
    assert ray.get(actor.on_main_thread.remote(), timeout=60) is False
    started, seen = str(tmp_path / "started"), str(tmp_path / "seen")
    ref = actor.spin_until_cancelled.remote(started, seen)
    wait_for_file(started)
    ray.cancel(ref)
    wait_for_file(seen, timeout=30)


def test_a_call_waiting_for_replies_other_than_get_gets_them():
    Recorder.options(name="loop-thread-peer").remote()
    actor = Recorder.remote()
    assert ray.get(actor.waits_on_replies.remote(), timeout=120) == (
        20,
        sum(i * i for i in range(20)),
        "put",
        1,
    )


def test_calls_arriving_during_a_long_call_run_after_it_in_each_callers_order():
    """Calls sent right behind a long one leave in one batch with it; more arrive while it
    runs (received by the standby thread): all run in the order they were sent."""
    actor = Recorder.remote()
    ray.get(actor.record.remote("warm", 0), timeout=60)
    errors = []

    def caller(index):
        try:
            refs = [actor.record.remote(index, 0), actor.sleep.remote(0.3)]
            refs += [actor.record.remote(index, seq) for seq in range(1, 20)]
            time.sleep(0.1)
            refs += [actor.record.remote(index, seq) for seq in range(20, 40)]
            ray.get(refs, timeout=120)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(150)
    assert not errors, errors
    calls = ray.get(actor.recorded.remote(), timeout=60)
    for index in range(2):
        assert [seq for caller, seq in calls if caller == index] == list(range(40))


@pytest.mark.parametrize("how", ["sys_exit", "os_exit", "segfault", "sigkill"])
def test_a_call_that_kills_its_worker_on_the_loop_thread_restarts_the_actor(how):
    actor = Recorder.options(max_restarts=1).remote()
    first = ray.get(actor.pid.remote(), timeout=60)
    with pytest.raises(RayActorError):
        ray.get(actor.die.remote(how), timeout=60)
    deadline = time.monotonic() + 60
    while True:
        try:
            second = ray.get(actor.pid.remote(), timeout=60)
            break
        except RayActorError:  # a call sent before the restart was seen
            assert time.monotonic() < deadline, "the actor never came back"
            time.sleep(0.1)
    assert second != first


def test_waits_hand_the_loop_over_at_once_without_the_timer(tmp_path):
    """With the timer pushed out of reach, a call on the loop thread that waits for a reply
    (get, wait, a request to the GCS) still gets it: the wait itself hands the loop over. The
    cluster is forked from this process, so it inherits the patched constant."""
    script = tmp_path / "no_timer.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})\n"
        "import babyray as ray\n"
        "from babyray.actors import worker\n"
        "worker.LOOP_HANDOVER_AFTER = 3600.0\n"
        f"ray.init(num_cpus=2, temp_dir={str(tmp_path)!r})\n"
        "@ray.remote\n"
        "def square(x):\n"
        "    return x * x\n"
        "@ray.remote\n"
        "class Peer:\n"
        "    def ping(self):\n"
        "        return 'pong'\n"
        "@ray.remote\n"
        "class Waiter:\n"
        "    def on_main_thread(self):\n"
        "        import threading\n"
        "        return threading.current_thread() is threading.main_thread()\n"
        "    def asks_the_gcs(self):\n"
        "        return ray.get_actor('peer') is not None\n"
        "    def waits(self):\n"
        "        refs = [square.remote(i) for i in range(5)]\n"
        "        ready, _ = ray.wait(refs, num_returns=5, timeout=30)\n"
        "        return len(ready), ray.get(refs, timeout=30)\n"
        "    def gets(self):\n"
        "        return ray.get(ray.get_actor('peer').ping.remote(), timeout=30)\n"
        "Peer.options(name='peer').remote()\n"
        "waiter = Waiter.remote()\n"
        "print(ray.get(waiter.on_main_thread.remote(), timeout=30))\n"
        "print(ray.get(waiter.asks_the_gcs.remote(), timeout=30))\n"
        "print(ray.get(waiter.waits.remote(), timeout=30))\n"
        "print(ray.get(waiter.gets.remote(), timeout=30))\n"
        "ray.shutdown()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:4] == ["True", "True", "(5, [0, 1, 4, 9, 16])", "pong"], done.stdout

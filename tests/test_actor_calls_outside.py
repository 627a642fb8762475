"""A driver's actor calls from the outside: a stopped receiver never holds ``.remote()``
(Thespian's own tell waits up to 60 s for an acknowledgement); calls from many threads, mixing
round trips and bursts, run in each thread's order; Ctrl-C pressed again and again at random
moments (caught, as in a notebook) loses no call.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import assert_session_clean

import babyray as ray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Thespian's own tell gives up on a receiver that does not acknowledge after 60 s.
STOCK_TELL_LIMIT = 60.0


@ray.remote
class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def pid(self) -> int:
        return os.getpid()

    def record(self, thread: int, seq: int) -> int:
        self.calls.append((thread, seq))
        return seq

    def recorded(self) -> list[tuple[int, int]]:
        return self.calls


def test_a_call_to_a_stopped_actor_returns_at_once_and_runs_when_it_resumes(cluster):
    actor = Recorder.remote()
    pid = ray.get(actor.pid.remote(), timeout=60)  # its worker is up, nothing in flight
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        ref = actor.record.remote(0, 1)
        held = time.monotonic() - started
        time.sleep(0.5)  # the worker stays stopped a while after the call was submitted
    finally:
        os.kill(pid, signal.SIGCONT)
    assert held < STOCK_TELL_LIMIT / 6, f".remote() waited {held:.1f}s for a stopped receiver"
    assert ray.get(ref, timeout=60) == 1
    assert ray.get(actor.recorded.remote(), timeout=60) == [(0, 1)]


def test_calls_from_many_threads_run_in_each_threads_order(cluster):
    """Each thread waits for every 7th call and sends the ones between as a burst."""
    actor = Recorder.remote()
    ray.get(actor.pid.remote(), timeout=60)
    threads_n, calls_n = 6, 60
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        try:
            refs = []
            for seq in range(calls_n):
                ref = actor.record.remote(index, seq)
                if seq % 7 == 0:
                    assert ray.get(ref, timeout=60) == seq
                else:
                    refs.append(ref)
            assert ray.get(refs, timeout=60) == [s for s in range(calls_n) if s % 7]
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    recorded = ray.get(actor.recorded.remote(), timeout=60)
    assert len(recorded) == threads_n * calls_n
    for index in range(threads_n):
        assert [seq for thread, seq in recorded if thread == index] == list(range(calls_n))


CTRL_C_DRIVER = """
import json, os, random, signal, sys, threading, time
import babyray as ray

ray.init(num_cpus=1, temp_dir=sys.argv[1])

@ray.remote
class Counter:
    def __init__(self):
        self.seen = []
    def add(self, i):
        self.seen.append(i)
        return i
    def seen_calls(self):
        return self.seen

@ray.remote
def echo(i):
    return i

counter = Counter.remote()
ray.get([counter.add.remote(-1), echo.remote(-1)], timeout=60)
start, stop, answered_one = threading.Event(), threading.Event(), threading.Event()

def press_ctrl_c():
    # SIGINT every 0.5-4 ms; every 50-200 presses it holds off until a round answers, so that
    # rounds complete however long one takes on the machine.
    start.wait()  # set inside the loop, where a KeyboardInterrupt is caught
    rng = random.Random(int(sys.argv[2]))
    until_pause = rng.randint(50, 200)
    while not stop.wait(rng.uniform(0.0005, 0.004)):
        os.kill(os.getpid(), signal.SIGINT)
        until_pause -= 1
        if until_pause == 0:
            answered_one.clear()
            answered_one.wait(10)
            until_pause = rng.randint(50, 200)

presser = threading.Thread(target=press_ctrl_c, daemon=True)
presser.start()
submitted, tasks, attempts, answered, interrupted = {}, {}, 0, 0, 0
deadline = time.monotonic() + 20
while time.monotonic() < deadline and answered < 400:
    try:
        start.set()
        attempts += 1  # each attempt's own argument, whether or not .remote() returns
        submitted[attempts] = counter.add.remote(attempts)
        tasks[attempts] = echo.remote(attempts)
        if ray.get([submitted[attempts], tasks[attempts]], timeout=30) == [attempts, attempts]:
            answered += 1
            answered_one.set()
    except KeyboardInterrupt:
        interrupted += 1
while True:  # the presser may press once more while being stopped
    try:
        stop.set()
        presser.join()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # for a press still pending
        break
    except KeyboardInterrupt:
        pass
values = ray.get(list(submitted.values()), timeout=60)
task_values = ray.get(list(tasks.values()), timeout=60)
seen = ray.get(counter.seen_calls.remote(), timeout=60)
ray.shutdown()
print(json.dumps({"answered": answered, "interrupted": interrupted, "submitted": list(submitted),
                  "values": values, "tasks": list(tasks), "task_values": task_values,
                  "seen": seen[1:]}))
"""


@pytest.mark.parametrize("seed", [1, 2])
def test_ctrl_c_pressed_again_and_again_loses_no_call(tmp_path, seed):
    """Jupyter-style: every KeyboardInterrupt is caught and the driver goes on, making an actor
    call and a task each round. Every call and task whose ref ``.remote()`` returned runs once
    and answers; a lost message would time out a get."""
    script = tmp_path / "driver.py"
    script.write_text(CTRL_C_DRIVER)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(seed)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["interrupted"] > 0 and result["answered"] > 0, result
    assert result["values"] == result["submitted"]
    assert result["task_values"] == result["tasks"]
    # A call interrupted inside .remote() after it was queued may run without its ref: every
    # attempt runs at most once, in order, and every one whose ref was returned runs.
    seen = result["seen"]
    assert len(seen) == len(set(seen)) and seen == sorted(seen), seen
    assert set(result["submitted"]) <= set(seen)
    sessions = glob.glob(str(tmp_path / "session_*"))
    assert sessions
    for session_dir in sessions:
        assert_session_clean(session_dir)

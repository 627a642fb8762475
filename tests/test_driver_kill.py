"""A driver killed at any moment leaves nothing behind: no process, no open pipe, no session file.

Each case runs a driver script in a subprocess of its own session, with a marker in its
environment that every process it starts inherits. The driver starts a private cluster and
works (tasks, nested tasks, an actor, a put, a blocking get that never returns); it is killed
(SIGTERM, SIGINT or SIGKILL, sent to the driver or to its process group as a terminal or
``timeout`` would) at a seeded random moment of one phase: during ``init()``, right after it,
mid-work, or during ``shutdown()``. Then, within a deadline: the pipes of its stdout and stderr
reach EOF (a leaked process holding them blocks any script that captures the driver's output),
no process carrying the marker runs, and no /dev/shm segment of its session nor any unix
socket its processes had bound (the allocation channel's) is left.

Stress run (prints each seed; a failing seed reruns the same moments):
    python tests/test_driver_kill.py --iterations 200 [--seed 7]
"""

from __future__ import annotations

import argparse
import glob
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import pytest

from babyray.procfs import is_running, processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER_VARIABLE = "BABYRAY_DRIVER_KILL_MARKER"
CLEANUP_DEADLINE = 30.0  # seconds a killed driver's cluster has to be gone (it takes well under one)
MARKER_WAIT = 120.0  # seconds a phase's marker line may take to appear on a busy machine
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}
PHASES = ("init", "after_init", "work", "shutdown")

DRIVER = """
import os, sys, time
import babyray as ray

temp_dir, last_phase = sys.argv[1], sys.argv[2]


@ray.remote
def leaf(x):
    return x + 1


@ray.remote
def nested(x):
    return sum(ray.get([leaf.remote(x), leaf.remote(x + 1)]))


@ray.remote
def hang():
    time.sleep(3600)


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n


print("PHASE init", flush=True)
ray.init(num_cpus=2, temp_dir=temp_dir, object_store_memory=64 * 1024 * 1024)
print("PHASE after_init", flush=True)
if last_phase == "after_init":
    time.sleep(3600)
print("PHASE work", flush=True)
counter = Counter.remote()
big = ray.put(b"x" * (2 * 1024 * 1024))
for round_ in range(3):
    assert ray.get([nested.remote(i) for i in range(4)]) == [2 * i + 3 for i in range(4)]
    assert ray.get(counter.add.remote(1)) == round_ + 1
    assert len(ray.get(big)) == 2 * 1024 * 1024
if last_phase == "work":
    ray.get(hang.remote())  # the hung driver: blocks until killed
print("PHASE shutdown", flush=True)
ray.shutdown()
print("PHASE done", flush=True)
time.sleep(3600)
"""

# Seconds after a phase's marker line within which the signal is sent (uniformly at random):
# about as long as the phase lasts on a quiet machine, so some signals land after it ended.
PHASE_SPAN = {"init": 2.5, "after_init": 0.05, "work": 2.0, "shutdown": 1.2}


@dataclass(frozen=True)
class KillCase:
    """One driver run: where and how it is killed."""

    seed: int
    signal_name: str
    phase: str
    to_group: bool  # the signal goes to the driver's process group (Ctrl-C, `timeout`), not just the driver

    @classmethod
    def random(cls, seed: int) -> "KillCase":
        rng = random.Random(seed)
        return cls(seed, rng.choice(sorted(SIGNALS)), rng.choice(PHASES), rng.random() < 0.5)

    def delay(self) -> float:
        return random.Random(self.seed * 7919 + 1).uniform(0.0, PHASE_SPAN[self.phase])

    def __str__(self) -> str:
        target = "group" if self.to_group else "driver"
        return f"seed={self.seed} {self.signal_name}->{target} {self.phase}+{self.delay():.3f}s"


def _marked_processes(marker: str) -> list[int]:
    """Pids of the running processes whose environment carries ``marker``."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for process in processes():
        try:
            with open(f"/proc/{process.pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0") and is_running(process.pid):
            found.append(process.pid)
    return found


def _describe(pids: list[int]) -> list[str]:
    described = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            described.append(f"{pid} (ppid {fields[1]}, pgid {fields[2]}, sid {fields[3]}): {cmdline[:120]}")
        except OSError:
            described.append(f"{pid} (gone)")
    return described


def _listening_unix_sockets() -> dict[str, str]:
    """inode -> name of every bound unix socket in this network namespace (abstract: leading "@")."""
    with open("/proc/net/unix") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return {row[6]: row[7] for row in rows if len(row) >= 8}


def _unix_sockets_of(pids: list[int]) -> set[str]:
    """The names of the unix sockets the processes ``pids`` have bound."""
    bound = _listening_unix_sockets()
    names = set()
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # gone
            continue
        names |= {bound[link[8:-1]] for link in links if link.startswith("socket:[") and link[8:-1] in bound}
    return names


def _session_files(temp_dir: str, sockets: set[str]) -> list[str]:
    """The /dev/shm segments of every session under ``temp_dir`` and those of ``sockets`` that
    are still bound (abstract) or on disk."""
    left = []
    for session in glob.glob(os.path.join(temp_dir, "session_*")):
        left += glob.glob(f"/dev/shm/babyray_{os.path.basename(session)[-6:]}_*")
    still_bound = set(_listening_unix_sockets().values())
    left += sorted(name for name in sockets if name in still_bound or os.path.exists(name))
    return left


def _pump(stream, lines: queue.Queue, name: str) -> None:
    """Put each line of ``stream`` on ``lines`` as (name, line), then (name, None) at EOF."""
    for raw in iter(stream.readline, b""):
        lines.put((name, raw.decode(errors="replace").rstrip("\n")))
    lines.put((name, None))


def run_case(case: KillCase, temp_dir: str) -> list[str]:
    """Run the driver, kill it as ``case`` says; return what it left behind (empty: nothing)."""
    marker = os.urandom(8).hex()
    script = os.path.join(temp_dir, "driver.py")
    with open(script, "w") as f:
        f.write(DRIVER)
    env = {**os.environ, MARKER_VARIABLE: marker, "PYTHONPATH": ROOT}
    last_phase = case.phase if case.phase in ("after_init", "work") else "shutdown"
    driver = subprocess.Popen(
        [sys.executable, script, temp_dir, last_phase],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    pumps = [
        threading.Thread(target=_pump, args=(stream, lines, name), daemon=True)
        for stream, name in ((driver.stdout, "stdout"), (driver.stderr, "stderr"))
    ]
    for pump in pumps:
        pump.start()
    output: list[str] = []
    open_streams = {"stdout", "stderr"}
    problems: list[str] = []
    try:
        deadline = time.monotonic() + MARKER_WAIT
        while f"PHASE {case.phase}" not in output:
            name, line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                open_streams.discard(name)
                if driver.poll() is not None and not open_streams:
                    raise AssertionError(
                        f"the driver ended before phase {case.phase}: " + "\n".join(output[-30:])
                    )
            else:
                output.append(line)
        time.sleep(case.delay())
        sockets = _unix_sockets_of(_marked_processes(marker))
        if case.to_group:
            os.killpg(driver.pid, SIGNALS[case.signal_name])
        else:
            driver.send_signal(SIGNALS[case.signal_name])
        deadline = time.monotonic() + CLEANUP_DEADLINE
        while open_streams and time.monotonic() < deadline:
            try:
                name, line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                open_streams.discard(name)
            else:
                output.append(line)
        if open_streams:
            problems.append(
                f"{sorted(open_streams)} of the killed driver still open after {CLEANUP_DEADLINE:.0f}s"
            )
        try:
            driver.wait(max(0.01, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            problems.append("the driver did not end")
        while (left := _marked_processes(marker)) and time.monotonic() < deadline:
            sockets |= _unix_sockets_of(left)
            time.sleep(0.1)
        if left:
            problems.append(f"processes of the run still running: {_describe(left)}")
        while (files := _session_files(temp_dir, sockets)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if files:
            problems.append(f"session files left: {files}")
    finally:
        for pid in _marked_processes(marker):  # a failed case leaves nothing either
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        driver.kill()
        driver.wait()
        for path in glob.glob(os.path.join(temp_dir, "session_*")):
            for segment in glob.glob(f"/dev/shm/babyray_{os.path.basename(path)[-6:]}_*"):
                os.unlink(segment)
    if problems:
        problems.append("driver output (last lines):\n" + "\n".join(output[-15:]))
    return problems


FIXED_CASES = [
    KillCase(seed, name, phase, seed % 2 == 1)
    for seed, (name, phase) in enumerate((n, p) for n in sorted(SIGNALS) for p in PHASES)
]
FIXED_CASES += [KillCase.random(seed) for seed in (1006, 1012)]  # a SIGKILL early in init, one right after it


@pytest.mark.parametrize("case", FIXED_CASES, ids=str)
def test_a_killed_driver_leaves_no_process_pipe_or_session_file(case, tmp_path):
    problems = run_case(case, str(tmp_path))
    assert not problems, f"{case}:\n" + "\n".join(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description="Kill drivers at random moments; report what they leave.")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    args = parser.parse_args()
    first = args.seed if args.seed is not None else random.randrange(1_000_000)
    failures = 0
    for seed in range(first, first + args.iterations):
        case = KillCase.random(seed)
        with tempfile.TemporaryDirectory(prefix="babyray-kill-") as temp_dir:
            problems = run_case(case, temp_dir)
        failures += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {case}", flush=True)
        for problem in problems:
            print("     " + problem.replace("\n", "\n     "), flush=True)
    print(
        f"{failures} of {args.iterations} runs left something behind (seeds {first}..{first + args.iterations - 1})"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

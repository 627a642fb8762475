"""Where the time of one empty-task round trip and one actor call goes, per process and per hop.

Before ``init()`` this script wraps the functions each hop passes through (the package is not
changed): Thespian sends and actor turns (``PartActor``), the driver's sender-thread
``tell()``s and its listener, ``CoreClient.submit``/``get``/``handle``, and the worker's
executor steps. The admin and every actor process are forked from this one, so they inherit
the wrappers; each process appends ``[time, process, event, thread, message types]`` to its
own file. For each measured call the script then follows the call through those events
(each milestone is the first matching event after the previous one) and prints the median
time of every hop over the calls, and what pickling the hop's message costs on its own; and,
for the slowest 2 % of the calls, which hop took them furthest above its median (the tail:
run with ``--calls 1000`` or more for it to mean much).
An empty task is followed both through the local scheduler and pushed straight to a worker
leased to the driver (worker leases, ``BABYRAY_LEASE_IDLE_TIMEOUT=0`` turns them off).

    python benchmarks/hop_profile.py [--calls 200] [--json out.json]

The wrappers themselves cost a few microseconds per event (one ``os.write`` each).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import itertools
import json
import os
import pickle
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import babyray as ray  # noqa: E402
from babyray import serialization  # noqa: E402
from babyray.actors import base, worker  # noqa: E402
from babyray.actors.batching import unbatch  # noqa: E402
from babyray.api import actor_calls, core, driver_transport  # noqa: E402
from babyray.protocol import tasks as tm  # noqa: E402
from babyray.protocol import values as vm  # noqa: E402

SLOWEST_SHARE = 0.02  # the share of calls whose lost time is traced to a hop
_trace_dir = ""
_fd: int | None = None
_fd_pid = 0
_process = "driver"  # an actor process names itself after its component at its first turn
_submitted: list[vm.TaskSpec] = []


def _record(event: str, types: tuple = ()) -> None:
    global _fd, _fd_pid
    pid = os.getpid()
    if _fd_pid != pid:  # first event in this (forked) process
        _fd = os.open(os.path.join(_trace_dir, f"{pid}.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fd_pid = pid
    line = json.dumps([time.time(), _process, event, threading.current_thread().name, list(types)])
    os.write(_fd, (line + "\n").encode())


def _types(msg: Any) -> tuple:
    return tuple(type(inner).__name__ for inner in unbatch(msg))


def _around(
    owner: Any, name: str, event: str, types: Callable[..., tuple] | None = None, after: bool = False
) -> None:
    """Record ``event`` (``<event>:enter``/``:exit``) each time ``owner.name`` is called."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kinds = types(*args) if types else ()
        _record(f"{event}:enter", kinds)
        try:
            return original(*args, **kwargs)
        finally:
            if after:
                _record(f"{event}:exit", kinds)

    static = isinstance(inspect.getattr_static(owner, name), staticmethod)
    setattr(owner, name, staticmethod(wrapper) if static else wrapper)


def install_wrappers(trace_dir: str) -> None:
    global _trace_dir
    _trace_dir = trace_dir
    receive = base.PartActor.receiveMessage

    def receive_message(self: base.PartActor, message: Any, sender: Any) -> Any:
        global _process
        _process = self.component
        _record("turn:enter", _types(message))
        try:
            return receive(self, message, sender)
        finally:
            _record("turn:exit")

    base.PartActor.receiveMessage = receive_message  # type: ignore[method-assign]
    thespian_send = base.PartActor.send

    def send(self: base.PartActor, dest: Any, msg: Any) -> None:
        _record("send:enter", _types(msg))
        thespian_send(self, dest, msg)
        _record("send:exit", _types(msg))

    base.PartActor.send = send  # type: ignore[method-assign]
    transport_init = driver_transport.DriverTransport.__init__

    def init(self: driver_transport.DriverTransport, *args: Any, **kwargs: Any) -> None:
        transport_init(self, *args, **kwargs)
        _around(self._send_ctx, "tell", "driver_tell", lambda dest, msg: _types(msg), after=True)

    driver_transport.DriverTransport.__init__ = init  # type: ignore[method-assign]
    _around(core.CoreClient, "submit", "submit", after=True)
    submit = core.CoreClient.submit

    def keep_spec(self: core.CoreClient, spec: vm.TaskSpec, dest: Any = None) -> list:
        _submitted[-1:] = [spec]  # the last one, to measure its messages' pickling
        return submit(self, spec, dest)

    core.CoreClient.submit = keep_spec  # type: ignore[method-assign]
    _around(actor_calls.ActorSubmitter, "submit", "actor_submit", after=True)
    _around(core.CoreClient, "get", "get", after=True)
    _around(core.CoreClient, "handle", "core_handle", lambda self, msg: _types(msg))
    _around(
        base.PartActor, "post_from_thread", "post_from_thread", lambda self, dest, msg, wake=True: _types(msg)
    )
    _around(
        base.PartActor,
        "post_behind_thread_posts",
        "post_behind_thread_posts",
        lambda self, dest, msg: _types(msg),
    )
    _around(worker.Worker, "_execute", "execute")
    _around(worker.Worker, "_arguments", "arguments", after=True)
    _around(worker.Worker, "_split_returns", "function_returned")
    _around(worker.Worker, "_report", "report")
    _around(base.PartActor, "wait_in_turn", "wait_in_turn", after=True)


# A milestone: (name shown, process, event, message type the event must carry or "").
Milestone = tuple[str, str, str, str]

TASK_PATH: list[Milestone] = [
    ("driver: f.remote() enters core.submit", "driver", "submit:enter", ""),
    ("driver: spec built, queued for the sender thread", "driver", "submit:exit", ""),
    ("driver: sender thread wakes, tell(SubmitTasks) starts", "driver", "driver_tell:enter", "SubmitTasks"),
    ("scheduler: turn with SubmitTasks starts", "local_scheduler", "turn:enter", "SubmitTasks"),
    ("scheduler: send(ExecuteTasks) called", "local_scheduler", "send:enter", "ExecuteTasks"),
    ("worker: turn with ExecuteTasks starts", "worker", "turn:enter", "ExecuteTasks"),
    ("worker: executor thread takes the task", "worker", "execute:enter", ""),
    ("worker: arguments ready, function called", "worker", "arguments:exit", ""),
    ("worker: function returned", "worker", "function_returned:enter", ""),
    ("worker: result handed to the loop", "worker", "post_from_thread:enter", "TaskResults"),
    ("worker: the loop, waiting in its turn, resumes", "worker", "wait_in_turn:exit", ""),
    ("worker: send(TaskResults) called", "worker", "send:enter", "TaskResults"),
    ("driver: listener hands TaskResults to the core", "driver", "core_handle:enter", "TaskResults"),
    ("driver: get() returns in the user's thread", "driver", "get:exit", ""),
]

# A task pushed to a worker leased to the driver: no scheduler on the way.
LEASED_TASK_PATH: list[Milestone] = [
    *TASK_PATH[:2],
    ("driver: sender thread wakes, tell(ExecuteTasks) starts", "driver", "driver_tell:enter", "ExecuteTasks"),
    *TASK_PATH[5:],
]

ACTOR_PATH: list[Milestone] = [
    ("driver: a.inc.remote() enters the actor submitter", "driver", "actor_submit:enter", ""),
    ("driver: call queued for the sender thread", "driver", "actor_submit:exit", ""),
    ("driver: sender thread wakes, tell(ExecuteTasks) starts", "driver", "driver_tell:enter", "ExecuteTasks"),
    ("worker: turn with ExecuteTasks starts", "worker", "turn:enter", "ExecuteTasks"),
    ("worker: the loop thread starts the call", "worker", "execute:enter", ""),
    ("worker: arguments ready, method called", "worker", "arguments:exit", ""),
    ("worker: method returned", "worker", "function_returned:enter", ""),
    ("worker: result queued", "worker", "post_behind_thread_posts:enter", "TaskResults"),
    ("worker: send(TaskResults) called", "worker", "send:enter", "TaskResults"),
    ("driver: listener hands TaskResults to the core", "driver", "core_handle:enter", "TaskResults"),
    ("driver: get() returns in the user's thread", "driver", "get:exit", ""),
]


def _load(trace_dir: str) -> list[list]:
    events = []
    for name in os.listdir(trace_dir):
        pid = int(name.split(".")[0])
        with open(os.path.join(trace_dir, name)) as fh:
            events += [[*json.loads(line), pid] for line in fh if line.endswith("\n")]
    events.sort(key=lambda e: e[0])
    return events


def _follow(events: list[list], path: list[Milestone]) -> tuple[list[float], str | None]:
    """The time of each milestone of ``path`` in ``events`` (one call) and the first one
    missing (None if the call was followed to the end)."""
    times, i = [], 0
    pids: dict[str, int] = {}  # a process's later milestones must be in the same process (one worker)
    for name, process, event, kind in path:
        while i < len(events):
            t, proc, ev, _, types, pid = events[i]
            i += 1
            if (
                proc == process
                and ev == event
                and (not kind or kind in types)
                and pids.setdefault(proc, pid) == pid
            ):
                times.append(t)
                break
        else:
            return times, name
    return times, None


def hops(events: list[list], windows: list[tuple[float, float]], path: list[Milestone]) -> dict:
    """Median milliseconds of each hop of ``path`` over the calls in ``windows``."""
    per_call, missed = [], Counter()
    for start, end in windows:
        inside = [e for e in events if start <= e[0] <= end]
        times, missing = _follow(inside, path)
        if missing is None:
            per_call.append([b - a for a, b in itertools.pairwise(times)] + [times[-1] - times[0]])
        else:
            missed[missing] += 1
    if not per_call:
        return {"calls": 0, "missed": dict(missed)}
    medians = [statistics.median(column) * 1e3 for column in zip(*per_call, strict=True)]
    beside = {
        "the driver's tell() (returns once the receiver acknowledged)": _durations(
            events, windows, "driver", "driver_tell"
        )
    }
    for process in ("local_scheduler", "worker"):
        beside[f"the {process}'s Thespian send()"] = _durations(events, windows, process, "send")
    names = [f"{a[0]}  ->  {b[0]}" for a, b in itertools.pairwise(path)]
    return {
        "calls": len(per_call),
        "hops_ms": dict(zip(names, medians[:-1], strict=True)),
        "total_ms": medians[-1],
        "missed": dict(missed),
        "beside_ms": {what: statistics.median(d) * 1e3 for what, d in beside.items() if d},
        "slowest": _slowest(per_call, medians, names),
    }


def _slowest(per_call: list[list[float]], medians: list[float], names: list[str]) -> dict:
    """Where the slowest calls (the slowest ``SLOWEST_SHARE``, at least one) lost their time:
    for each, the hop furthest above its median; per such hop, how many calls and their median
    excess in ms."""
    count = max(1, int(len(per_call) * SLOWEST_SHARE))
    slowest = sorted(per_call, key=lambda call: call[-1])[-count:]
    excess: dict[str, list[float]] = {}
    for call in slowest:
        over = [
            (ms * 1e3 - median, name) for ms, median, name in zip(call[:-1], medians[:-1], names, strict=True)
        ]
        most, name = max(over)
        excess.setdefault(name, []).append(most)
    return {
        "calls": count,
        "total_ms": statistics.median(call[-1] for call in slowest) * 1e3,
        "hops": {
            name: {"calls": len(values), "median_excess_ms": statistics.median(values)}
            for name, values in sorted(excess.items(), key=lambda item: -len(item[1]))
        },
    }


def _durations(
    events: list[list], windows: list[tuple[float, float]], process: str, event: str
) -> list[float]:
    """How long each ``event`` (enter to exit) of ``process`` took inside ``windows``.

    A driver's ``tell()`` returns once the receiver acknowledged the message, and an actor's
    ``send()`` may transmit at once or leave it to Thespian's loop: the receiver may handle
    the message before either returns, so they are not steps of the path but run beside it.
    """
    out = []
    for start, end in windows:
        entered = None
        for t, proc, ev, _, _, _ in (e for e in events if start <= e[0] <= end):
            if proc == process and ev == f"{event}:enter" and entered is None:
                entered = t
            elif proc == process and ev == f"{event}:exit" and entered is not None:
                out.append(t - entered)
                break
    return out


def pickle_costs(spec: vm.TaskSpec) -> dict:
    """Microseconds to pickle and unpickle each message of the round trip, and its size."""
    result = tm.TaskResult(
        spec.task_id,
        ((spec.return_ids[0], vm.InlineValue(serialization.dumps(None))),),
        "worker-id",
        "node-id",
        started_at=time.time(),
    )
    out = {}
    for msg in (tm.SubmitTasks((spec,)), tm.ExecuteTasks((spec,)), tm.TaskResults((result,))):
        blob = pickle.dumps(msg)
        n = 2000
        t = time.perf_counter()
        for _ in range(n):
            pickle.loads(pickle.dumps(msg))
        out[type(msg).__name__] = {
            "bytes": len(blob),
            "pickle_and_unpickle_us": (time.perf_counter() - t) / n * 1e6,
        }
    return out


def measure(calls: int) -> dict:
    trace_dir = tempfile.mkdtemp(prefix="babyray-hops-")
    install_wrappers(trace_dir)
    ray.init(num_cpus=2)

    @ray.remote
    def empty() -> None:
        return None

    @ray.remote
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def inc(self) -> int:
            self.n += 1
            return self.n

    counter = Counter.remote()
    for _ in range(50):  # warm up: workers started, functions fetched
        ray.get(empty.remote())
        ray.get(counter.inc.remote())
    time.sleep(0.5)
    windows: dict[str, list[tuple[float, float]]] = {"task": [], "actor": []}
    for _ in range(calls):
        for kind, call in (("task", empty.remote), ("actor", counter.inc.remote)):
            start = time.time()
            ray.get(call())
            windows[kind].append((start, time.time()))
    spec = _submitted[-1]
    ray.shutdown()
    events = _load(trace_dir)
    for name in os.listdir(trace_dir):
        os.unlink(os.path.join(trace_dir, name))
    os.rmdir(trace_dir)
    return {
        "task": hops(events, windows["task"], TASK_PATH),
        "leased_task": hops(events, windows["task"], LEASED_TASK_PATH),
        "actor": hops(events, windows["actor"], ACTOR_PATH),
        "pickling": pickle_costs(spec),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    before = os.getloadavg()
    result = measure(args.calls)
    print(
        f"load average before {before[0]:.2f}, after {result['load_average'][0]:.2f}; "
        f"medians over {args.calls} calls of each kind"
    )
    titles = {
        "task": "empty task round trip through the local scheduler",
        "leased_task": "empty task round trip pushed to a leased worker",
        "actor": "actor call round trip",
    }
    for kind, title in titles.items():
        profile = result[kind]
        if not profile["calls"]:
            print(f"\n{title}: no call could be followed through every hop")
            continue
        print(f"\n{title}: {profile['total_ms']:.3f} ms (median of the {profile['calls']} calls followed)")
        for hop, ms in profile["hops_ms"].items():
            print(f"  {ms:7.3f} ms  {hop}")
        for what, ms in profile["beside_ms"].items():
            print(f"  {ms:7.3f} ms  beside the path: {what}")
        for name, n in profile["missed"].items():
            print(f"  ({n} calls not followed: no event '{name}')")
        slow = profile["slowest"]
        print(f"  the slowest {slow['calls']} calls ({slow['total_ms']:.3f} ms, median) lost most in:")
        for hop, lost in slow["hops"].items():
            print(f"    {lost['calls']:4d} calls  +{lost['median_excess_ms']:.3f} ms (median)  {hop}")
    print("\npickle.dumps + pickle.loads of each message (Thespian pickles once to send, once to receive):")
    for name, cost in result["pickling"].items():
        print(f"  {name:12} {cost['bytes']:6d} bytes  {cost['pickle_and_unpickle_us']:7.1f} us")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()

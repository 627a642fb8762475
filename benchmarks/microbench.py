"""Microbenchmarks of babyray against Ray, measured in one run on this machine.

Each system runs in its own subprocess (same workload, same machine, back to back):
``init()`` to ready, empty-task round trip, task throughput, values
streamed by one generator task (each taken with ``next`` and read with ``get``), put/get of
a 100 MB array, one task with 10,000 small ref arguments (submit to result), actor creation,
actor method round trip and call throughput, and a chain of 1,000 actor calls each passing
on the 1 MB array the previous one returned; for babyray also Thespian's own round trip
(``thespian_floor.py``: two plain actors, and an ``ask`` from outside), the floor under
every hop. Beside each round trip's time, the CPU time of every process of the system (its
driver and everything it started: schedulers, stores, workers, agents) per round trip, read
from ``/proc`` around the same loop: on a 2-core machine the latency rests on it. Prints a
table with the ratio babyray/Ray for each figure and writes benchmarks/results/microbench.json. Last, on a fresh cluster for each
``n`` of ``--fib``: remote recursion ``fib(n)`` (each task ``get``s its two subtasks) cold
(the first run: the workers the blocked tasks need start on the way) and warm (run again); a
run that takes longer than ``--fib-timeout`` seconds is reported as timed out.

With ``--rounds N`` each system is measured N times, alternating which goes first (babyray,
Ray, then Ray, babyray, ...), so that a slow spell of this shared machine falls on both; each
figure is then the median over the rounds, and the table also shows the lowest and highest
ratio of a round's two measurements. Every round's figures go into the JSON file.

    python benchmarks/microbench.py [--only babyray] [--rounds 3] [--tasks 10000] [--round-trips 1000] [--fib 10,15]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MB = 1 << 20
MANY_ARGS = 10_000
CHAIN_CALLS = 1000
RUN_TAG = "MICROBENCH_RUN"  # in each measured child's environment, so inherited by all it starts


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@functools.cache
def _procfs():
    """``babyray.procfs`` loaded on its own: importing the ``babyray`` package in Ray's child
    would patch Thespian there."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "babyray", "procfs.py")
    spec = importlib.util.spec_from_file_location("babyray_procfs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def _system_cpu_seconds() -> float:
    """CPU seconds used so far by this process and every process it started or forked (those
    that inherited its ``RUN_TAG``), the system's parts and workers among them."""
    procfs = _procfs()
    stats = (procfs.stat(pid) for pid in procfs.processes_with_environment(RUN_TAG, os.environ[RUN_TAG]))
    return sum(stat.cpu_seconds for stat in stats if stat is not None)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(system: str, tasks: int, round_trips: int, fib_ns: list[int], fib_timeout: float) -> dict:
    """Run the workload on ``system`` ("babyray" or "ray") in this process."""
    import numpy as np

    if system == "ray":
        import ray

        init_kwargs = {
            "num_cpus": 2,
            "include_dashboard": False,
            "object_store_memory": 1 << 30,
            "log_to_driver": False,
        }
    else:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import babyray as ray

        init_kwargs = {"num_cpus": 2, "object_store_memory": 1 << 30}
    out: dict = {}
    start = time.perf_counter()
    info = ray.init(**init_kwargs)

    @ray.remote
    def empty():
        return None

    ray.get(empty.remote())
    out["init_s"] = time.perf_counter() - start

    for _ in range(50):  # warm up the workers
        ray.get(empty.remote())
    latencies = []
    cpu = _system_cpu_seconds()
    for _ in range(round_trips):
        t = time.perf_counter()
        ray.get(empty.remote())
        latencies.append(time.perf_counter() - t)
    out["task_rtt_cpu_ms"] = (_system_cpu_seconds() - cpu) / round_trips * 1e3
    out["task_rtt_median_ms"] = statistics.median(latencies) * 1e3
    out["task_rtt_p99_ms"] = _quantile(latencies, 0.99) * 1e3

    t = time.perf_counter()
    ray.get([empty.remote() for _ in range(tasks)])
    out["task_throughput_per_s"] = tasks / (time.perf_counter() - t)
    if system == "babyray":  # the same tasks as the workers saw them, from their task_executed events
        from babyray import log_reader

        events = log_reader.load(info.address_info["session_dir"], events=("task_executed",))
        runs = log_reader.task_executions(events)[-tasks:]
        out["task_exec_median_ms"] = log_reader.latency_summary(runs).get("p50_ms", 0.0)
        out["worker_exec_throughput_per_s"] = log_reader.throughput(runs)

    @ray.remote
    def stream(n):
        for i in range(n):
            yield i

    t = time.perf_counter()
    assert sum(ray.get(ref) for ref in stream.remote(tasks)) == tasks * (tasks - 1) // 2
    out["generator_items_per_s"] = tasks / (time.perf_counter() - t)

    array = np.ones(100 * 1024 * 1024 // 8)
    puts, gets = [], []
    for _ in range(5):
        t = time.perf_counter()
        ref = ray.put(array)
        puts.append(time.perf_counter() - t)
        t = time.perf_counter()
        value = ray.get(ref)
        gets.append(time.perf_counter() - t)
        del value, ref
    out["put_100mb_ms"] = statistics.median(puts) * 1e3
    out["get_100mb_ms"] = statistics.median(gets) * 1e3

    @ray.remote
    def count(*values):
        return len(values)

    small_refs = [ray.put(i) for i in range(MANY_ARGS)]
    t = time.perf_counter()
    assert ray.get(count.remote(*small_refs)) == MANY_ARGS
    out["task_10k_ref_args_s"] = time.perf_counter() - t
    del small_refs

    if hasattr(ray, "method") or system == "ray":
        try:
            out.update(_measure_actors(ray, round_trips, tasks))
        except NotImplementedError:
            pass
    ray.shutdown()
    if system == "babyray":  # Thespian's own round trip in this run: the floor under every hop
        import thespian_floor

        floor = thespian_floor.measure(round_trips)
        out["thespian_actor_rtt_median_ms"] = floor["actor_to_actor_rtt_median_ms"]
        out["thespian_ask_rtt_median_ms"] = floor["external_ask_rtt_median_ms"]
    for n in fib_ns:
        ray.init(**init_kwargs)
        out.update(_measure_fib(ray, n, fib_timeout))
        ray.shutdown()
    return out


def _measure_fib(ray, n: int, timeout: float) -> dict:
    """Seconds of ``fib(n)`` by remote recursion, cold then warm; "timed out" past ``timeout``."""

    @ray.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    out: dict = {}
    for label in ("cold", "warm"):
        t = time.perf_counter()
        try:
            assert ray.get(fib.remote(n), timeout=timeout) == _fib(n)
        except ray.exceptions.GetTimeoutError:
            out[f"fib{n}_{label}_s"] = f"timed out ({timeout:.0f} s)"
            break
        out[f"fib{n}_{label}_s"] = time.perf_counter() - t
    return out


def _measure_actors(ray, round_trips: int, calls: int) -> dict:
    import numpy as np

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def inc(self):
            self.n += 1
            return self.n

    out = {}
    creations = []
    for _ in range(5):
        t = time.perf_counter()
        actor = Counter.remote()
        ray.get(actor.inc.remote())
        creations.append(time.perf_counter() - t)
        ray.kill(actor)
    out["actor_create_ms"] = statistics.median(creations) * 1e3
    actor = Counter.remote()
    ray.get(actor.inc.remote())
    latencies = []
    cpu = _system_cpu_seconds()
    for _ in range(round_trips):
        t = time.perf_counter()
        ray.get(actor.inc.remote())
        latencies.append(time.perf_counter() - t)
    out["actor_rtt_cpu_ms"] = (_system_cpu_seconds() - cpu) / round_trips * 1e3
    out["actor_rtt_median_ms"] = statistics.median(latencies) * 1e3
    out["actor_rtt_p99_ms"] = _quantile(latencies, 0.99) * 1e3
    t = time.perf_counter()
    ray.get([actor.inc.remote() for _ in range(calls)])
    out["actor_throughput_per_s"] = calls / (time.perf_counter() - t)

    @ray.remote
    class Relay:
        def pass_on(self, array):
            return array

    relay = Relay.remote()
    ref = ray.put(np.ones(MB // 8))
    ray.get(relay.pass_on.remote(ref))
    t = time.perf_counter()
    for _ in range(CHAIN_CALLS):
        ref = relay.pass_on.remote(ref)
    assert ray.get(ref).nbytes == MB
    out["actor_chain_1k_1mb_s"] = time.perf_counter() - t
    return out


LOWER_IS_BETTER = {
    "init_s",
    "task_rtt_median_ms",
    "task_rtt_p99_ms",
    "task_rtt_cpu_ms",
    "put_100mb_ms",
    "get_100mb_ms",
    "actor_create_ms",
    "actor_rtt_median_ms",
    "actor_rtt_p99_ms",
    "actor_rtt_cpu_ms",
    "task_10k_ref_args_s",
    "actor_chain_1k_1mb_s",
}


def _measure_in_child(system: str, args: argparse.Namespace) -> dict | None:
    """One round of ``system``'s workload in a fresh process; None if it failed."""
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            system,
            "--tasks",
            str(args.tasks),
            "--round-trips",
            str(args.round_trips),
            "--fib",
            args.fib,
            "--fib-timeout",
            str(args.fib_timeout),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, RUN_TAG: uuid.uuid4().hex},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"{system} failed:\n{proc.stderr[-3000:]}", flush=True)
        return None
    return json.loads(lines[-1])


def _median_over_rounds(rounds: list[dict]) -> dict:
    """Each figure's median over the rounds (a figure that is not a number, such as a timed-out
    fib, is kept as the first round gave it)."""
    merged: dict = {}
    for key in dict.fromkeys(k for r in rounds for k in r):
        values = [r[key] for r in rounds if key in r]
        numbers = [v for v in values if isinstance(v, float)]
        merged[key] = statistics.median(numbers) if numbers else values[0]
    return merged


def _round_ratios(runs: dict[str, list[dict | None]], key: str) -> list[float]:
    """babyray / Ray of ``key`` in each round both systems measured it."""
    if len(runs) < 2:
        return []
    return [
        ours[key] / theirs[key]
        for ours, theirs in zip(runs["babyray"], runs["ray"], strict=True)
        if ours is not None
        and theirs is not None
        and isinstance(ours.get(key), float)
        and isinstance(theirs.get(key), float)
        and theirs[key]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["babyray", "ray"])
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each system, alternating")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument(
        "--fib", default="10,15", help="the n of each remote recursion fib(n), comma-separated"
    )
    parser.add_argument("--fib-timeout", type=float, default=180.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fib_ns = [int(n) for n in args.fib.split(",") if n]
        print(json.dumps(measure(args.child, args.tasks, args.round_trips, fib_ns, args.fib_timeout)))
        return
    systems = [args.only] if args.only else ["babyray", "ray"]
    if "ray" in systems:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ray is not importable: pip install -r requirements-bench.txt to compare", flush=True)
            systems.remove("ray")
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    runs: dict[str, list[dict | None]] = {system: [] for system in systems}  # None: that round failed
    for round_no in range(args.rounds):
        for system in systems if round_no % 2 == 0 else systems[::-1]:
            print(f"measuring {system} (round {round_no + 1} of {args.rounds}) ...", flush=True)
            runs[system].append(_measure_in_child(system, args))
    results = {
        system: _median_over_rounds([r for r in rounds if r is not None])
        for system, rounds in runs.items()
        if any(rounds)
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "microbench.json"), "w") as fh:
        json.dump(
            {
                "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "load_average_before": load_before,
                "load_average_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                "rounds": args.rounds,
                "results": results,
                "each_round": runs,
            },
            fh,
            indent=2,
        )
    keys = sorted(
        {k for r in results.values() for k in r},
        key=lambda k: list(results.get("babyray", {})).index(k) if k in results.get("babyray", {}) else 99,
    )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (before: {load_before})")
    print(f"{'metric':28} {'babyray':>12} {'ray':>12} {'babyray/ray':>12} {'rounds':>13}")
    for key in keys:
        ours, theirs = results.get("babyray", {}).get(key), results.get("ray", {}).get(key)
        numbers = isinstance(ours, float) and isinstance(theirs, float)
        ratio = f"{ours / theirs:.2f}x" if numbers and theirs else "-"
        ratios = _round_ratios(runs, key)
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}x" if len(ratios) > 1 else ""
        fmt = lambda v: "-" if v is None else v if isinstance(v, str) else f"{v:.3f}"  # noqa: E731
        note = " (lower is better)" if key in LOWER_IS_BETTER or key.startswith("fib") else ""
        print(f"{key:28} {fmt(ours):>12} {fmt(theirs):>12} {ratio:>12} {spread:>13}{note}")
    floor = results.get("babyray", {}).get("thespian_actor_rtt_median_ms")
    ray_actor = results.get("ray", {}).get("actor_rtt_median_ms")
    if floor and ray_actor:
        print(
            f"Thespian alone (two plain actors, one round trip): {floor:.3f} ms = "
            f"{floor / ray_actor:.2f}x Ray's actor call round trip"
        )


if __name__ == "__main__":
    main()

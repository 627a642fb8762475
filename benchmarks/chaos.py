"""Chaos: a job of many tasks on a head and two members while workers and a member are killed.

The job (run by a driver in the driver network namespace, deploy/netns.py) is a mix of
independent tasks and dependency chains whose steps pass 1 MB numpy arrays. It runs twice on
fresh clusters: once without faults, then while a killer in this process kill -9s a random
worker process (a pid whose session ``pids/<pid>`` file says ``worker``, in the head's or a
member's namespace) every second, and kill -9s every process of member ``m1`` once. A third
run ("bursts") kills workers two and three at a time every second, and its tasks segfault
their worker now and then (``--segfault-rate``). Every
result is checked. Retries and reconstructions are counted from the structlog JSON events of
all session log directories (``babyray.log_reader``). Needs root and iproute2.

    python benchmarks/chaos.py [--tasks 10000] [--quick] [--no-baseline] [--bursts-only]

Writes benchmarks/results/chaos.json. Target: every result correct, no task lost, no hang,
wall time at most 3x the fault-free run (0 results lost in every run).
"""

from __future__ import annotations

import argparse
import collections
import glob
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("babyray_deploy_netns_chaos", ROOT / "deploy" / "netns.py")
netns = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = netns
_spec.loader.exec_module(netns)

NODE_TIMEOUT = 3.0
CHAIN_LENGTH = 50  # tasks per chain: one that makes the 1 MB array, then steps
ARRAY_ELEMENTS = 131072  # float64: 1 MB
COUNTED_EVENTS = {
    "retries": (
        "task_retry_worker_died",
        "task_retry_on_exception",
        "task_resubmitted_node_died",
        "task_resubmitted_leased_worker_died",
    ),
    "reconstructions": ("object_reconstructing",),
    "inputs_rebuilt": ("task_input_lost_rebuilding",),
    "workers_died": ("worker_died",),
    "nodes_dead": ("node_dead",),
    "objects_lost": ("object_lost",),
    "failures": ("task_failed_worker_died", "task_failed_node_died", "task_failed_leased_worker_died"),
}

DRIVER = textwrap.dedent("""
    import ctypes, json, os, random, sys, time
    import numpy as np
    import babyray as ray

    n_independent, n_chains, chain_length, elements, markers, out_path, budget, max_retries, segfault_rate = \\
        json.loads(sys.argv[1])
    ray.init(address="auto")
    deadline = time.monotonic() + 60
    while sum(n["Alive"] for n in ray.nodes()) < 3:
        assert time.monotonic() < deadline, ray.nodes()
        time.sleep(0.2)

    @ray.remote(max_retries=max_retries)
    def square(i):
        if segfault_rate and os.path.exists(os.path.join(markers, "READY")) and random.random() < segfault_rate:
            ctypes.string_at(0)  # segfault: the worker dies, the task is retried
        return i * i

    @ray.remote(max_retries=max_retries)
    def first(c):
        a = np.zeros(elements)
        a[0] = c
        return a

    @ray.remote(max_retries=max_retries)
    def step(previous):
        return previous + 1.0

    ray.get([square.remote(i) for i in range(60)], timeout=120)  # workers warm on every node
    open(os.path.join(markers, "READY"), "w").close()
    started = time.monotonic()
    expected = {}
    refs = []
    chains_per_wave = max(1, n_chains // 10)
    independent_per_wave = max(1, n_independent // 10)
    i = c = 0
    while i < n_independent or c < n_chains:  # interleave the two kinds
        for _ in range(independent_per_wave):
            if i < n_independent:
                ref = square.remote(i)
                expected[ref.id] = ("square", i)
                refs.append(ref)
                i += 1
        for _ in range(chains_per_wave):
            if c < n_chains:
                ref = first.remote(c)
                for _ in range(chain_length - 1):
                    ref = step.remote(ref)
                expected[ref.id] = ("chain", c)
                refs.append(ref)
                c += 1
    submitted = time.monotonic() - started
    pending, correct, wrong, errors = refs, 0, [], []
    del refs
    while pending:
        remaining = budget - (time.monotonic() - started)
        if remaining <= 0:
            break
        ready, pending = ray.wait(pending, num_returns=min(200, len(pending)), timeout=min(remaining, 5.0))
        for ref in ready:
            kind, k = expected[ref.id]
            try:
                value = ray.get(ref, timeout=max(1.0, budget - (time.monotonic() - started)))
            except Exception as exc:
                errors.append(f"{kind} {k}: {type(exc).__name__}: {exc}"[:400])
                continue
            if kind == "square":
                ok = value == k * k
            else:
                ok = (value.shape == (elements,) and value[0] == k + chain_length - 1
                      and bool((value[1:] == chain_length - 1).all()))
            if ok:
                correct += 1
            else:
                wrong.append(f"{kind} {k}")
    wall = time.monotonic() - started
    result = {"wall_s": wall, "submit_s": submitted, "results": len(expected), "correct": correct,
              "wrong": wrong[:20], "n_wrong": len(wrong), "errors": errors[:20], "n_errors": len(errors),
              "not_finished": len(pending), "hang": bool(pending)}
    with open(out_path, "w") as f:
        json.dump(result, f)
    open(os.path.join(markers, "DONE"), "w").close()
    ray.shutdown()
    print("DRIVER DONE", json.dumps(result))
""")


def worker_pids(cluster, temp_dir: Path, hosts: list[str]) -> list[int]:
    """Alive pids registered as ``worker`` in any session under ``temp_dir``, in ``hosts``' namespaces."""
    in_hosts = {p for h in hosts for p in cluster.pids(h)}
    found = []
    for path in glob.glob(str(temp_dir / "session_*" / "pids" / "*")):
        try:
            pid = int(os.path.basename(path))
            with open(path) as f:
                if f.read().strip() != "worker":
                    continue
        except (OSError, ValueError):
            continue
        if pid in in_hosts:
            found.append(pid)
    return found


class Killer(threading.Thread):
    """Kills random workers every ``period`` seconds, and member m1 once at ``kill_node_at``.

    ``bursts`` is how many workers die together in each round, in turn (``(1,)``: one at a
    time; ``(2, 3)``: two, then three, then two...).
    """

    def __init__(
        self,
        cluster,
        temp_dir: Path,
        period: float,
        kill_node_at: float | None,
        seed: int,
        bursts: tuple[int, ...] = (1,),
    ) -> None:
        super().__init__(name="chaos-killer", daemon=True)
        self.cluster, self.temp_dir, self.period = cluster, temp_dir, period
        self.kill_node_at = kill_node_at
        self.bursts = bursts
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.workers_killed: list[dict] = []
        self.node_killed: dict | None = None
        self.started = 0.0

    def run(self) -> None:
        self.started = time.monotonic()
        hosts = ["head", "m1", "m2"]
        rounds = 0
        while not self.stop.wait(self.period):
            elapsed = time.monotonic() - self.started
            if self.kill_node_at is not None and self.node_killed is None and elapsed >= self.kill_node_at:
                pids = self.cluster.kill_host("m1")
                self.node_killed = {"host": "m1", "at_s": round(elapsed, 2), "pids": len(pids)}
                hosts = ["head", "m2"]
                print(f"  [{elapsed:6.1f}s] killed member m1 ({len(pids)} processes)", flush=True)
                continue
            pids = worker_pids(self.cluster, self.temp_dir, hosts)
            burst = self.bursts[rounds % len(self.bursts)]
            rounds += 1
            for pid in self.rng.sample(pids, min(burst, len(pids))):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                self.workers_killed.append({"pid": pid, "at_s": round(elapsed, 2), "burst": burst})


def count_events(temp_dir: Path) -> dict:
    from babyray import log_reader

    wanted = {name for names in COUNTED_EVENTS.values() for name in names}
    events = log_reader.load([str(d) for d in temp_dir.glob("session_*")], events=wanted)
    by_name = collections.Counter(e.get("event") for e in events)
    counts = {key: sum(by_name[n] for n in names) for key, names in COUNTED_EVENTS.items()}
    counts["by_event"] = dict(sorted(by_name.items()))
    return counts


def run_job(
    label: str,
    n_independent: int,
    n_chains: int,
    chaos: bool,
    budget: float,
    kill_node_at: float | None,
    seed: int,
    keep: bool,
    max_retries: int,
    bursts: tuple[int, ...] = (1,),
    segfault_rate: float = 0.0,
) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"babyray-chaos-{label}-"))
    temp_dir = work / "sessions"
    markers = work / "markers"
    markers.mkdir()
    env = {
        "BABYRAY_TEMP_DIR": str(temp_dir),
        "BABYRAY_NODE_TIMEOUT": str(NODE_TIMEOUT),
        "BABYRAY_OBJECT_STORE_MEMORY": str(512 * 1024 * 1024),
    }
    script = work / "driver.py"
    script.write_text(DRIVER)
    out_path = work / "result.json"
    args = json.dumps(
        [
            n_independent,
            n_chains,
            CHAIN_LENGTH,
            ARRAY_ELEMENTS,
            str(markers),
            str(out_path),
            budget,
            max_retries,
            segfault_rate,
        ]
    )
    print(
        f"{label}: {n_independent} independent tasks + {n_chains} chains of {CHAIN_LENGTH} "
        f"(1 MB objects){' with faults' if chaos else ''}",
        flush=True,
    )
    cluster = netns.NetnsCluster(netns.random_prefix("ch"), members=2, env=env, num_cpus=2)
    killer = None
    cluster.up()
    try:
        proc = cluster.popen_in("driver", [sys.executable, str(script), args], log=str(work / "driver.log"))
        deadline = time.monotonic() + 180
        while not (markers / "READY").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("driver did not get ready:\n" + (work / "driver.log").read_text()[-3000:])
            time.sleep(0.05)
        if chaos:
            killer = Killer(cluster, temp_dir, 1.0, kill_node_at, seed, bursts)
            killer.start()
        try:
            proc.wait(timeout=budget + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
        if killer is not None:
            killer.stop.set()
            killer.join()
        if out_path.exists():
            result = json.loads(out_path.read_text())
        else:  # the driver hung past its budget (a get that never returned) and was killed
            print("  driver wrote no result:\n" + (work / "driver.log").read_text()[-2000:], flush=True)
            result = {
                "wall_s": budget + 120,
                "results": n_independent + n_chains,
                "correct": 0,
                "wrong": [],
                "n_wrong": 0,
                "errors": ["driver hung"],
                "n_errors": 1,
                "not_finished": None,
                "hang": True,
            }
    finally:
        if killer is not None:
            killer.stop.set()
        cluster.down()
    result.update(count_events(temp_dir))
    if killer is not None:
        result["workers_killed"] = len(killer.workers_killed)
        result["node_killed"] = killer.node_killed
    result["tasks"] = n_independent + n_chains * CHAIN_LENGTH
    result["bursts"], result["segfault_rate"] = list(bursts), segfault_rate
    if keep:
        result["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"  wall {result['wall_s']:.1f}s; {result['correct']}/{result['results']} results correct; "
        f"{result['n_errors']} errors, {result['n_wrong']} wrong, {result['not_finished']} unfinished; "
        f"retries {result['retries']}, reconstructions {result['reconstructions']}, "
        f"workers killed {result.get('workers_killed', 0)}",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10000, help="total tasks (default 10000)")
    parser.add_argument("--chain-share", type=float, default=0.2, help="share of the tasks in chains")
    parser.add_argument("--quick", action="store_true", help="1,000 tasks, for a smoke test")
    parser.add_argument("--no-baseline", action="store_true", help="only the run with faults")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--max-retries",
        type=int,
        default=-1,
        help="max_retries of every task (default -1, unbounded, as in Ray's chaos tests: with a "
        "worker killed every second among ~6, a task of a rebuilt chain can be hit more "
        "than 3 times)",
    )
    parser.add_argument(
        "--segfault-rate",
        type=float,
        default=0.003,
        help="in the bursts run, the chance that a task attempt segfaults its worker",
    )
    parser.add_argument(
        "--bursts-only",
        action="store_true",
        help="only the run where workers die two and three at a time and by segfault",
    )
    parser.add_argument("--keep", action="store_true", help="keep the session logs")
    parser.add_argument("--out", default=str(RESULTS / "chaos.json"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `timeout` still tears the clusters down
    ok, why = netns.netns_available()
    if not ok:
        print(f"chaos needs network namespaces: {why}", file=sys.stderr)
        return 2
    tasks = 1000 if args.quick else args.tasks
    n_chains = max(2, round(tasks * args.chain_share / CHAIN_LENGTH))
    n_independent = max(0, tasks - n_chains * CHAIN_LENGTH)
    baseline = chaos = None
    if not args.no_baseline and not args.bursts_only:
        baseline = run_job(
            "fault-free", n_independent, n_chains, False, 1800, None, args.seed, args.keep, args.max_retries
        )
    base_wall = baseline["wall_s"] if baseline else None
    budget = max(120.0, 10 * base_wall) if base_wall else 1800.0
    kill_node_at = 0.4 * base_wall if base_wall else 5.0
    if not args.bursts_only:
        chaos = run_job(
            "chaos",
            n_independent,
            n_chains,
            True,
            budget,
            kill_node_at,
            args.seed,
            args.keep,
            args.max_retries,
        )
    bursts = run_job(
        "bursts",
        n_independent,
        n_chains,
        True,
        budget,
        None,
        args.seed,
        args.keep,
        args.max_retries,
        bursts=(2, 3),
        segfault_rate=args.segfault_rate,
    )
    for run in (baseline, chaos, bursts):
        if run:
            run["completed_tasks"] = run["tasks"] if not run["hang"] and not run["n_errors"] else None
    ratio = chaos["wall_s"] / base_wall if base_wall and chaos else None
    passed = all(
        run["correct"] == run["results"] and not run["hang"] and not run["n_errors"]
        for run in (chaos, bursts)
        if run
    ) and (ratio is None or ratio <= 3.0)
    report = {
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "tasks": n_independent + n_chains * CHAIN_LENGTH,
        "independent_tasks": n_independent,
        "chains": n_chains,
        "chain_length": CHAIN_LENGTH,
        "object_bytes": ARRAY_ELEMENTS * 8,
        "nodes": "head + 2 members (2 CPUs each), network namespaces",
        "node_timeout_s": NODE_TIMEOUT,
        "max_retries": args.max_retries,
        "kill_period_s": 1.0,
        "fault_free": baseline,
        "chaos": chaos,
        "bursts": bursts,
        "wall_ratio": ratio,
        "target_ratio": 3.0,
        "passed": passed,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\n{'run':<11} {'wall s':>8} {'correct':>13} {'lost':>5} {'retries':>8} {'rebuilt':>8} {'killed':>7} "
        f"{'died':>5}"
    )
    for name, run in (("fault-free", baseline), ("chaos", chaos), ("bursts", bursts)):
        if run:
            lost = run["results"] - run["correct"]
            print(
                f"{name:<11} {run['wall_s']:>8.1f} {run['correct']:>6}/{run['results']:<6} {lost:>5} "
                f"{run['retries']:>8} {run['reconstructions']:>8} {run.get('workers_killed', 0):>7} "
                f"{run['workers_died']:>5}"
            )
    if ratio is not None:
        print(f"wall time ratio chaos / fault-free: {ratio:.2f} (target <= 3)")
    print(f"{'PASS' if passed else 'FAIL'}; wrote {out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""What token authentication costs: the microbenchmark's task and actor round trips and
Figure 9's puts, with authentication on and off, measured in one run.

    python -m benchmarks.auth_overhead [--rounds 10] [--round-trips 500] [--trials 3] [--together]
    (from the repo root)

Each measurement is a fresh private cluster (``init(auth_mode=...)``) in its own subprocess;
the two modes alternate (on, off, off, on, ...) so that the machine's load drifts over both
alike; with ``--together`` each round runs both clusters at the same time instead, so that
both see the very same load (and each other). Per metric the median and the best (lowest) over the rounds are reported, with the
ratio on/off: on a shared machine the best is the least disturbed by other load, and the
CPU time the driver and the cluster's processes spend per round trip (``*_cpu_ms``) is
less disturbed than the wall-clock round trip. It also
times what authentication adds to one Thespian message (sign and verify, against plain
pickle), which does not depend on the machine's load as much. Writes
benchmarks/results/auth_overhead.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import statistics
import subprocess
import sys
import time

from benchmarks.fig9 import KB, MB, _label, _trials

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PUT_SIZES = [KB, 100 * KB, MB, 10 * MB]
MODES = ("token", "disabled")


def _cluster_cpu_seconds(session_dir: str) -> float:
    """CPU time used so far by this driver and every process of its private cluster."""
    from babyray import procfs
    from babyray.session import session_pids

    used = sum(os.times()[:2])
    for pid in session_pids(session_dir):
        process = procfs.stat(pid)
        if process is not None:
            used += process.cpu_seconds
    return used


def measure(mode: str, round_trips: int, trials: int) -> dict:
    """One cluster with ``auth_mode=mode``: round-trip medians (ms), the cluster's CPU time per
    round trip (ms) and seconds per put."""
    import babyray as ray

    session_dir = ray.init(num_cpus=2, object_store_memory=1 << 30, auth_mode=mode).address_info[
        "session_dir"
    ]
    out: dict = {}
    try:

        @ray.remote
        def empty():
            return None

        @ray.remote
        class Counter:
            def __init__(self):
                self.n = 0

            def inc(self):
                self.n += 1
                return self.n

        actor = Counter.remote()
        for name, call in (("task_rtt_ms", empty.remote), ("actor_rtt_ms", actor.inc.remote)):
            for _ in range(50):
                ray.get(call())
            latencies = []
            cpu = _cluster_cpu_seconds(session_dir)
            for _ in range(round_trips):
                start = time.perf_counter()
                ray.get(call())
                latencies.append(time.perf_counter() - start)
            out[name.replace("rtt", "cpu")] = (_cluster_cpu_seconds(session_dir) - cpu) / round_trips * 1e3
            out[name] = statistics.median(latencies) * 1e3

        def free() -> None:
            gc.collect()
            deadline = time.monotonic() + 30
            while ray.memory_stats()[0]["num_objects"] and time.monotonic() < deadline:
                time.sleep(0.01)

        for size in PUT_SIZES:
            per_put = _trials(ray.put, free, size, trials)
            out[f"put_{_label(size).replace(' ', '')}_us"] = statistics.median(per_put) * 1e6
    finally:
        ray.shutdown()
    return out


def message_cost_us(payload_bytes: int, repeat: int = 20000) -> dict:
    """Microseconds to pickle and unpickle one message of ``payload_bytes``, plain and signed."""
    from babyray import auth
    from babyray.thespian_patches import MESSAGE_SIGNER

    auth.use_token(auth.generate_token())
    message = ("ActorAddr-(T|127.0.0.1:40000)", {"task": "f" * 16, "args": b"x" * payload_bytes})
    out = {}
    for name, codec in (("plain", pickle), ("signed", MESSAGE_SIGNER)):
        start = time.perf_counter()
        for _ in range(repeat):
            codec.loads(codec.dumps(message))
        out[name] = (time.perf_counter() - start) / repeat * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--together",
        action="store_true",
        help="run each round's two clusters at the same time: both see the same load",
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.round_trips, args.trials)))
        return
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for index in range(args.rounds):
        order = MODES if index % 2 == 0 else MODES[::-1]
        for group in [order] if args.together else [[mode] for mode in order]:
            children = {
                mode: subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.auth_overhead",
                        "--child",
                        mode,
                        "--round-trips",
                        str(args.round_trips),
                        "--trials",
                        str(args.trials),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=os.path.dirname(os.path.dirname(RESULTS)),
                )
                for mode in group
            }
            for mode, child in children.items():
                out, err = child.communicate()
                lines = [line for line in out.splitlines() if line.startswith("{")]
                if child.returncode != 0 or not lines:
                    raise SystemExit(f"the {mode} run failed:\n{err[-3000:]}")
                runs[mode].append(json.loads(lines[-1]))
                print(f"round {index + 1} auth {mode}: {runs[mode][-1]}", flush=True)
    summary = {
        key: {mode: statistics.median(run[key] for run in runs[mode]) for mode in MODES}
        for key in runs["token"][0]
    }
    best = {key: {mode: min(run[key] for run in runs[mode]) for mode in MODES} for key in runs["token"][0]}
    print(
        f"\n{'metric, over ' + str(args.rounds) + ' rounds':26} {'median: on':>11} {'off':>9} {'on/off':>7}"
        f"  {'best: on':>9} {'off':>9} {'on/off':>7}"
    )
    for key, value in summary.items():
        low = best[key]
        print(
            f"{key:26} {value['token']:>11.3f} {value['disabled']:>9.3f} {value['token'] / value['disabled']:>7.3f}"
            f"  {low['token']:>9.3f} {low['disabled']:>9.3f} {low['token'] / low['disabled']:>7.3f}"
        )
    per_message = {size: message_cost_us(size) for size in (100, 10 * KB, 100 * KB)}
    print(f"\n{'one message, pickle + unpickle':34} {'signed us':>10} {'plain us':>10} {'added us':>8}")
    for size, cost in per_message.items():
        print(
            f"{_label(size) if size >= KB else str(size) + ' B':34} {cost['signed']:>10.2f} {cost['plain']:>10.2f} "
            f"{cost['signed'] - cost['plain']:>8.2f}"
        )
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "auth_overhead.json"), "w") as f:
        json.dump(
            {
                "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                "together": args.together,
                "rounds": runs,
                "median": summary,
                "best": best,
                "message_us": per_message,
            },
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()

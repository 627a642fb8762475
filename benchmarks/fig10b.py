"""Figure 10b of the Ray paper: GCS memory over a long stream of empty tasks, with and without flushing.

For each mode (GCS flushing on, then off) a private babyray cluster runs ``--tasks`` empty tasks
(a window of them in flight) while a thread samples the GCS actor's own process RSS every 0.5 s.
Each mode's samples go to ``benchmarks/results/fig10b_<mode>.csv`` (elapsed s, GCS RSS MB, tasks
done); the curves go to ``benchmarks/results/fig10b.png``. Where ``ray`` is importable the same
workload (``--ray-tasks``, default 50,000) runs on Ray in a child process, sampling its
``gcs_server``. Target: with flushing, RSS after N tasks is within 20 MB of its value after the
first 10,000; without flushing it grows with N.

    python benchmarks/fig10b.py --tasks 200000
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_PERIOD_S = 0.5
BASELINE_TASKS = 10_000  # the target compares the final RSS with the RSS after this many tasks
CHUNK = 1000  # tasks submitted per step; two steps are in flight


def rss_mb(pid: int) -> float:
    """Resident set size of process pid in MB, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise ProcessLookupError(pid)


class Sampler:
    """Samples a process's RSS every SAMPLE_PERIOD_S on a thread, with the tasks done so far."""

    def __init__(self, pid: int, done: Callable[[], int]) -> None:
        self.pid, self.done = pid, done
        self.rows: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fig10b-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(SAMPLE_PERIOD_S):
                return

    def sample(self) -> None:
        try:
            self.rows.append(
                (round(time.monotonic() - self._start, 3), round(rss_mb(self.pid), 2), self.done())
            )
        except (ProcessLookupError, FileNotFoundError):
            pass

    def stop(self) -> list[tuple[float, float, int]]:
        self._stop.set()
        self._thread.join()
        self.sample()
        return self.rows


def run_stream(
    remote_fn: Callable[[], object], get: Callable[[list], object], tasks: int, pid: int
) -> tuple[list[tuple[float, float, int]], float]:
    """Run tasks empty tasks, CHUNK at a time with two chunks in flight; return samples and seconds."""
    from babyray.progress import Progress

    done = [0]
    sampler = Sampler(pid, lambda: done[0])
    bar = Progress(tasks, desc="tasks done")
    started = time.monotonic()
    previous: list = []
    submitted = 0
    while submitted < tasks or previous:
        n = min(CHUNK, tasks - submitted)
        current = [remote_fn() for _ in range(n)]
        submitted += n
        if previous:
            get(previous)
            done[0] += len(previous)
            bar.update(len(previous))
        previous = current
    bar.close()
    seconds = time.monotonic() - started
    return sampler.stop(), seconds


def run_babyray(flushing: bool, tasks: int) -> dict:
    import babyray as ray
    from babyray import log_reader
    from babyray.api import context
    from babyray.protocol import gcs as gm

    @ray.remote
    def empty() -> None:
        return None

    with tempfile.TemporaryDirectory(prefix="fig10b-") as temp_dir:
        info = ray.init(num_cpus=2, temp_dir=temp_dir, gcs_flushing=flushing)
        try:
            runtime = context.runtime()
            with runtime.head.system.private() as ctx:
                stats = ctx.ask(runtime.gcs, gm.GetGcsStats("fig10b"), 10)
            samples, seconds = run_stream(empty.remote, ray.get, tasks, stats.pid)
            with runtime.head.system.private() as ctx:
                stats = ctx.ask(runtime.gcs, gm.GetGcsStats("fig10b-end"), 10)
        finally:
            ray.shutdown()
        runs = log_reader.task_executions(
            log_reader.load(info.address_info["session_dir"], events=("task_executed",))
        )  # the workers' own account
    mode = "flushing_on" if flushing else "flushing_off"
    return summarize(
        mode,
        samples,
        seconds,
        tasks,
        extra={
            "gcs_in_memory": stats.in_memory,
            "gcs_evicted": stats.evicted,
            "exec_per_s": round(log_reader.throughput(runs)),
        },
    )


def find_ray_gcs_pid() -> int:
    """The newest gcs_server process, found by scanning /proc (no psutil)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == "gcs_server":
            found.append(int(entry))
    if not found:
        raise RuntimeError("no gcs_server process found")
    return max(found, key=lambda pid: os.stat(f"/proc/{pid}").st_mtime)


def run_ray(tasks: int) -> dict:
    import ray

    @ray.remote
    def empty() -> None:
        return None

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray.get([empty.remote() for _ in range(10)])
        samples, seconds = run_stream(empty.remote, ray.get, tasks, find_ray_gcs_pid())
    finally:
        ray.shutdown()
    return summarize("ray", samples, seconds, tasks)


def summarize(
    mode: str, samples: list[tuple[float, float, int]], seconds: float, tasks: int, extra: dict | None = None
) -> dict:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"fig10b_{mode}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["elapsed_s", "gcs_rss_mb", "tasks_done"])
        writer.writerows(samples)
    baseline_tasks = min(BASELINE_TASKS, tasks)
    at_baseline = next((rss for _, rss, done in samples if done >= baseline_tasks), samples[-1][1])
    final = samples[-1][1]
    return {
        "mode": mode,
        "tasks": tasks,
        "seconds": round(seconds, 2),
        "tasks_per_s": round(tasks / seconds, 1),
        "rss_start_mb": samples[0][1],
        "baseline_tasks": baseline_tasks,
        "rss_baseline_mb": at_baseline,
        "rss_final_mb": final,
        "growth_mb": round(final - at_baseline, 2),
        "csv": str(path),
        **(extra or {}),
    }


def plot(results: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_tasks, by_time) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = {
        "flushing_on": "babyray, GCS flushing",
        "flushing_off": "babyray, no flushing",
        "ray": "Ray 2.x",
    }
    for result in results:
        with open(result["csv"]) as f:
            rows = [(float(t), float(mb), int(n)) for t, mb, n in list(csv.reader(f))[1:]]
        label = labels.get(result["mode"], result["mode"])
        by_tasks.plot([n for _, _, n in rows], [mb for _, mb, _ in rows], label=label)
        by_time.plot([t for t, _, _ in rows], [mb for _, mb, _ in rows], label=label)
    by_tasks.set_xlabel("tasks done")
    by_time.set_xlabel("elapsed (s)")
    for ax in (by_tasks, by_time):
        ax.set_ylabel("GCS RSS (MB)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Figure 10b: GCS memory over a stream of empty tasks")
    fig.tight_layout()
    path = RESULTS / "fig10b.png"
    fig.savefig(path, dpi=120)
    return path


def print_table(results: list[dict]) -> None:
    keys = [
        "mode",
        "tasks",
        "seconds",
        "tasks_per_s",
        "rss_start_mb",
        "baseline_tasks",
        "rss_baseline_mb",
        "rss_final_mb",
        "growth_mb",
    ]
    print(" | ".join(f"{k:>15}" for k in keys))
    for result in results:
        print(" | ".join(f"{result.get(k, '')!s:>15}" for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="empty tasks per babyray mode")
    parser.add_argument("--ray-tasks", type=int, default=50_000, help="empty tasks on Ray (0: skip Ray)")
    parser.add_argument("--modes", default="on,off", help="babyray flushing modes to run: on, off or both")
    parser.add_argument("--ray-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_child:  # Ray runs in its own process, apart from babyray's actor system
        print(json.dumps(run_ray(args.ray_tasks)))
        return
    results = [run_babyray(mode == "on", args.tasks) for mode in args.modes.split(",")]
    if args.ray_tasks and importlib.util.find_spec("ray") is not None:
        child = subprocess.run(
            [sys.executable, __file__, "--ray-child", "--ray-tasks", str(args.ray_tasks)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print_table(results)
    with open(RESULTS / "fig10b.json", "w") as f:
        json.dump(results, f, indent=2)
    print(f"figure: {plot(results)}")
    on = next((r for r in results if r["mode"] == "flushing_on"), None)
    if on is not None:
        verdict = "met" if abs(on["growth_mb"]) <= 20 else "missed"
        print(f"target (flushing on: growth after the first {BASELINE_TASKS} tasks within 20 MB): {verdict}")
    ray_result = next((r for r in results if r["mode"] == "ray"), None)
    if on is not None and ray_result is not None:
        print(
            f"Ray GCS growth over {ray_result['tasks']} tasks: {ray_result['growth_mb']} MB "
            f"(from start: {round(ray_result['rss_final_mb'] - ray_result['rss_start_mb'], 1)} MB)"
        )


if __name__ == "__main__":
    main()

"""Figure 9 of the Ray paper: single-client ``put`` IOPS and throughput against object size.

    python -m benchmarks.fig9 [--trials 5] [--max-size 1GB] [--no-ray]   (from the repo root)

For numpy objects of 1 KB .. 1 GB, one driver thread puts objects back to back (keeping
the refs, so nothing is freed while a trial runs), several trials per size, and the median
is reported; between trials the refs are dropped and the frees are waited for, so the
arena's pages are reused as in steady state. Large objects (>= 64 MB) are also put with 2
copy threads. The same workload runs on Ray (in a subprocess, same store size) and
``np.copyto`` into a pre-faulted buffer gives this machine's memcpy speed, all in the same
run. Writes benchmarks/results/fig9.csv and fig9.png (IOPS and GB/s vs size, log axes).
"""

from __future__ import annotations

import argparse
import csv
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

KB, MB, GB = 1 << 10, 1 << 20, 1 << 30
SIZES = [KB, 10 * KB, 100 * KB, MB, 10 * MB, 100 * MB, GB]
STORE_BYTES = int(2.5 * GB)
TRIAL_BYTES = 1 * GB  # at most this many bytes put per trial
MAX_OPS = 2000
THREADS_FROM = 64 * MB
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _label(size: int) -> str:
    return f"{size // GB} GB" if size >= GB else f"{size // MB} MB" if size >= MB else f"{size // KB} KB"


def _ops(size: int) -> int:
    return max(1, min(MAX_OPS, TRIAL_BYTES // size))


def _arrays(size: int) -> np.ndarray:
    return np.random.default_rng(size).integers(0, 255, size, dtype=np.uint8)


def _trials(put, free, size: int, trials: int) -> list[float]:
    """Seconds per put, one value per trial."""
    array = _arrays(size)
    n = _ops(size)
    out = []
    put(array)  # warm-up (first touch of code paths and pages)
    free()
    for _ in range(trials):
        held = []
        start = time.perf_counter()
        for _ in range(n):
            held.append(put(array))
        out.append((time.perf_counter() - start) / n)
        del held
        free()
    return out


def run_babyray(sizes: list[int], trials: int) -> list[dict]:
    import babyray
    from babyray.api import object_io as object_io_module
    from babyray.store.arena import write_object

    babyray.init(num_cpus=2, object_store_memory=STORE_BYTES)
    rows = []
    try:

        def free() -> None:
            gc.collect()
            deadline = time.monotonic() + 30
            while babyray.memory_stats()[0]["num_objects"] and time.monotonic() < deadline:
                time.sleep(0.01)

        for size in sizes:
            for threads in [1, 2] if size >= THREADS_FROM else [1]:
                object_io_module.write_object = functools.partial(write_object, copy_threads=threads)
                per_put = _trials(babyray.put, free, size, trials)
                rows.append(_row("babyray", size, threads, per_put))
                _print(rows[-1])
        object_io_module.write_object = write_object
    finally:
        babyray.shutdown()
    return rows


def run_ray(sizes: list[int], trials: int) -> list[dict]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=STORE_BYTES, log_to_driver=False)
    rows = []
    try:

        def free() -> None:
            gc.collect()
            time.sleep(0.05)

        for size in sizes:
            per_put = _trials(ray.put, free, size, trials)
            rows.append(_row("ray", size, 1, per_put))
            _print(rows[-1], file=sys.stderr)
    finally:
        ray.shutdown()
    return rows


def run_memcpy(sizes: list[int], trials: int) -> list[dict]:
    rows = []
    for size in sizes:
        src = _arrays(size)
        dst = np.ones(size, dtype=np.uint8)  # touched: pre-faulted
        n = max(1, min(MAX_OPS, TRIAL_BYTES // size))
        per = []
        for _ in range(trials):
            start = time.perf_counter()
            for _ in range(n):
                np.copyto(dst, src)
            per.append((time.perf_counter() - start) / n)
        rows.append(_row("memcpy", size, 1, per))
        _print(rows[-1])
    return rows


def _row(system: str, size: int, threads: int, per_put: list[float]) -> dict:
    median = statistics.median(per_put)
    return {
        "system": system,
        "size": size,
        "copy_threads": threads,
        "trials": len(per_put),
        "ops_per_trial": _ops(size),
        "median_seconds": median,
        "iops": 1 / median,
        "gb_per_s": size / median / 1e9,
    }


def _print(row: dict, file=sys.stdout) -> None:
    print(
        f"{row['system']:<8} {_label(row['size']):>7} threads={row['copy_threads']} "
        f"{row['iops']:>12.1f} puts/s {row['gb_per_s']:>8.3f} GB/s",
        file=file,
        flush=True,
    )


def _plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_iops, ax_gbs) = plt.subplots(1, 2, figsize=(11, 4.2))
    series: dict[str, list[dict]] = {}
    for row in rows:
        name = row["system"] + (
            f" ({row['copy_threads']} copy threads)" if row["system"] == "babyray" else ""
        )
        series.setdefault(name, []).append(row)
    for name, points in series.items():
        points.sort(key=lambda r: r["size"])
        xs = [p["size"] for p in points]
        style = "--" if name.startswith("memcpy") else "-"
        ax_iops.plot(xs, [p["iops"] for p in points], style, marker="o", label=name)
        ax_gbs.plot(xs, [p["gb_per_s"] for p in points], style, marker="o", label=name)
    for ax, ylabel in ((ax_iops, "puts per second"), (ax_gbs, "throughput (GB/s)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("object size (bytes)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(SIZES, [_label(s) for s in SIZES])
        ax.grid(True, which="both", alpha=0.3)
    ax_gbs.legend(fontsize=8)
    fig.suptitle("Figure 9: single-client put, babyray vs Ray vs memcpy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _summary(rows: list[dict]) -> None:
    by = {(r["system"], r["size"], r["copy_threads"]): r for r in rows}
    print(
        f"\n{'size':>7} {'babyray puts/s':>15} {'ray puts/s':>12} {'ratio':>6} {'babyray GB/s (best)':>20} "
        f"{'memcpy GB/s':>12} {'of memcpy':>10}"
    )
    for size in sorted({r["size"] for r in rows}):
        ours = max(
            (r for r in rows if r["system"] == "babyray" and r["size"] == size),
            key=lambda r: r["iops"],
            default=None,
        )
        ray_row = by.get(("ray", size, 1))
        mem = by.get(("memcpy", size, 1))
        if ours is None:
            continue
        ratio = f"{ours['iops'] / ray_row['iops']:.2f}" if ray_row else "-"
        of_mem = f"{ours['gb_per_s'] / mem['gb_per_s']:.2f}" if mem else "-"
        print(
            f"{_label(size):>7} {ours['iops']:>15.1f} {ray_row['iops'] if ray_row else float('nan'):>12.1f} "
            f"{ratio:>6} {ours['gb_per_s']:>20.3f} {mem['gb_per_s'] if mem else float('nan'):>12.3f} {of_mem:>10}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--max-size", default="1GB", help="largest size: 1KB .. 1GB")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--ray-only", action="store_true", help=argparse.SUPPRESS)  # the Ray subprocess
    args = parser.parse_args()
    limit = {"KB": KB, "MB": MB, "GB": GB}[args.max_size[-2:].upper()] * int(args.max_size[:-2])
    sizes = [s for s in SIZES if s <= limit]
    if args.ray_only:
        print(json.dumps(run_ray(sizes, args.trials)))
        return
    rows = run_memcpy(sizes, args.trials)
    rows += run_babyray(sizes, args.trials)
    if not args.no_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ray is not importable: skipping the Ray comparison")
        else:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.fig9",
                "--ray-only",
                "--trials",
                str(args.trials),
                "--max-size",
                args.max_size,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(RESULTS) + "/..")
            if done.returncode == 0:
                rows += json.loads(done.stdout.strip().splitlines()[-1])
                sys.stderr.write(done.stderr[-2000:] if os.environ.get("FIG9_VERBOSE") else "")
            else:
                print("the Ray run failed:\n" + done.stderr[-3000:])
    rows += run_memcpy([s for s in sizes if s >= 100 * MB], args.trials)  # memcpy again, after: same run
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "fig9.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    memcpy_rows = {}
    for r in rows:  # the faster of the two memcpy measurements (before and after) is the bar
        if r["system"] == "memcpy":
            prev = memcpy_rows.get(r["size"])
            memcpy_rows[r["size"]] = r if prev is None or r["gb_per_s"] > prev["gb_per_s"] else prev
    rows = [r for r in rows if r["system"] != "memcpy"] + list(memcpy_rows.values())
    _summary(rows)
    _plot(rows, os.path.join(RESULTS, "fig9.png"))
    print(f"\nwrote {os.path.join(RESULTS, 'fig9.csv')} and fig9.png")


if __name__ == "__main__":
    main()

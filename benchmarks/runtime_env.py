"""What a job-level ``working_dir`` costs: packing and uploading it in ``init()``, the first
task on a node (fetch and unpack), and a new worker pool reusing the node's copy.

For each size, a directory of that many MiB of random (incompressible) bytes is the job's
working_dir on a private 2-CPU cluster. Prints one line per size and writes
benchmarks/results/runtime_env.json.

    python benchmarks/runtime_env.py [--sizes 1 50 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import babyray as ray  # noqa: E402


def measure(mib: int) -> dict:
    directory = tempfile.mkdtemp(prefix="babyray_bench_wd_")
    sessions = tempfile.mkdtemp(prefix="babyray_bench_sessions_")  # removed after: each holds the package
    try:
        with open(os.path.join(directory, "blob.bin"), "wb") as f:
            f.write(os.urandom(mib * 1024 * 1024))
        started = time.monotonic()
        ray.init(num_cpus=2, temp_dir=sessions, runtime_env={"working_dir": directory})
        initialized = time.monotonic()

        @ray.remote
        def size() -> int:
            return os.path.getsize("blob.bin")

        assert ray.get(size.remote(), timeout=600) == mib * 1024 * 1024
        first = time.monotonic()
        other_pool = size.options(runtime_env={"env_vars": {"BENCH_POOL": "2"}})
        assert ray.get(other_pool.remote(), timeout=600) == mib * 1024 * 1024
        cached = time.monotonic()
        return {
            "mib": mib,
            "init_s": round(initialized - started, 3),
            "first_task_s": round(first - initialized, 3),
            "new_pool_cached_s": round(cached - first, 3),
        }
    finally:
        ray.shutdown()
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(sessions, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 50, 200], help="working_dir sizes in MiB")
    args = parser.parse_args()
    results = []
    for mib in args.sizes:
        results.append(measure(mib))
        print(json.dumps(results[-1]), flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "runtime_env.json"), "w") as fh:
        json.dump({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()

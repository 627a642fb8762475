"""Placement group latency on a private 4-CPU node: from ``placement_group()`` to its
``ready()`` resolving, and ``remove_placement_group()`` until the CPUs are free again.

    python -m benchmarks.placement_groups [--groups 30] [--bundles 2]   (from the repo root)

Prints the median and 90th percentile of each over ``--groups`` groups of ``--bundles``
one-CPU bundles (PACK), made one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import time

import babyray as ray
from babyray.util import placement_group, remove_placement_group


def _summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{name:<28} median {statistics.median(ordered) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--bundles", type=int, default=2)
    args = parser.parse_args()
    ray.init(num_cpus=4)
    try:
        ready, freed = [], []
        for _ in range(args.groups):
            start = time.perf_counter()
            pg = placement_group([{"CPU": 1}] * args.bundles, strategy="PACK")
            ray.get(pg.ready(), timeout=60)
            ready.append(time.perf_counter() - start)
            start = time.perf_counter()
            remove_placement_group(pg)
            while ray.available_resources().get("CPU", 0.0) < 4.0:
                time.sleep(0.005)
            freed.append(time.perf_counter() - start)
        print(_summary("create -> ready()", ready))
        print(_summary("remove -> CPUs free again", freed))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

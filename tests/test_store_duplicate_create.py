"""A second create of an object id through the public API: a retried task storing its return again."""

from __future__ import annotations

import gc
import os
import time

import numpy as np

import babyray as ray

MB = 1024 * 1024


class _PicklesOnSecondTry:
    """Fails to pickle the first time (leaving a marker file), pickles as "ok" after that."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise TypeError("not pickled on the first try")
        return str, ("ok",)


@ray.remote(num_returns=2, max_retries=1, retry_exceptions=True)
def array_then_flaky(marker):
    return np.full(MB, 7, dtype=np.uint8), _PicklesOnSecondTry(marker)


def _memory_settles(cluster_stats) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        gc.collect()
        stats = cluster_stats()
        if stats["num_objects"] == 0 and stats["used_bytes"] == 0:
            return True
        time.sleep(0.05)
    return False


def test_a_retried_task_storing_its_return_again_keeps_one_copy_and_leaks_no_slot(cluster, tmp_path):
    """Attempt 1 stores return 0 in the store, then fails on return 1 and is retried on the same
    node: attempt 2 creates return 0 again. The store keeps one copy and frees the other."""
    first, second = array_then_flaky.remote(str(tmp_path / "tried"))
    assert ray.get(second, timeout=60) == "ok"
    value = ray.get(first, timeout=60)
    assert value.shape == (MB,) and (value == 7).all()
    del value, first, second
    assert _memory_settles(lambda: ray.memory_stats()[0]), ray.memory_stats()[0]

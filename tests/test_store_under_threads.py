"""Eight threads of one driver putting, getting and passing along objects of 100 bytes to 3 MB
at once (to tasks, through an actor, waited for in batches): every value comes back right and
nothing is left in the store once the refs are gone.

Before the store waited for puts on their way (a task's return into a spare slot, announced to
its owner before the store read it), 60 s of this gave 4 ObjectLostErrors here."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.api.memory import memory_stats

MB = 1024 * 1024
SECONDS = 15.0
SIZES = (800, 200 * 1024, MB, 3 * MB)


@ray.remote
def total(array: np.ndarray) -> int:
    return int(array.sum())


@ray.remote
def filled(x: int, size: int) -> np.ndarray:
    return np.full(size // 8, x, dtype=np.int64)


@ray.remote
class Relay:
    def pass_on(self, array: np.ndarray) -> np.ndarray:
        return array


def _one_thread(seed: int, relay, deadline: float, errors: list[str]) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        size, x = rng.choice(SIZES), rng.randint(0, 100)
        try:
            kind = rng.randint(0, 3)
            if kind == 0:
                ref = ray.put(np.full(size // 8, x, dtype=np.int64))
                assert ray.get(total.remote(ref), timeout=60) == x * (size // 8)
                assert int(ray.get(ref, timeout=60)[0]) == x
            elif kind == 1:
                assert ray.get(total.remote(filled.remote(x, size)), timeout=60) == x * (size // 8)
            elif kind == 2:
                assert int(ray.get(relay.pass_on.remote(filled.remote(x, size)), timeout=60)[-1]) == x
            else:
                ready, _ = ray.wait([filled.remote(x, size) for _ in range(5)], num_returns=5, timeout=60)
                assert len(ready) == 5
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            errors.append(f"{type(exc).__name__}: {exc}"[:500])


def test_eight_threads_of_puts_gets_and_returns_lose_nothing_and_leave_nothing(cluster):
    relay, errors = Relay.remote(), []
    deadline = time.monotonic() + SECONDS
    threads = [threading.Thread(target=_one_thread, args=(i, relay, deadline, errors)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS + 120)
    assert not [thread for thread in threads if thread.is_alive()], "a thread still waits"
    assert not errors, errors[:5]
    wait_until(lambda: memory_stats()[0]["num_objects"] == 0, 30, "every object freed")

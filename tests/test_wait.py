"""wait() ordering on a fresh cluster (no workers or queues left over from other tests)."""

from __future__ import annotations

from test_tasks import double, interruptible_sleep

import babyray as ray


def test_wait_returns_ready_refs_in_input_order(cluster):
    slow = interruptible_sleep.remote(5)
    fast = [double.remote(i) for i in range(3)]
    ready, not_ready = ray.wait([fast[2], slow, fast[0], fast[1]], num_returns=3, timeout=20)
    assert ready == [fast[2], fast[0], fast[1]]
    assert not_ready == [slow]

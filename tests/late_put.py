"""A task whose return reaches its object store late: the race between a writer's allocation
channel and the readers of what it wrote, made wide (tests of the object store)."""

from __future__ import annotations

import threading

import numpy as np

import babyray as ray

MB = 1024 * 1024


def late_value() -> np.ndarray:
    """What ``returned_late`` returns: a 1 MB array."""
    return np.arange(MB // 8, dtype=np.int64)


@ray.remote(max_retries=0)
def returned_late(delay: float | None) -> np.ndarray:
    """``late_value()``, returned into a spare slot (puts of its size came first) whose take and
    seal reach the store ``delay`` seconds after the task's owner is told the value is ready
    (never, if None)."""
    import babyray.store.alloc_channel as channel

    value = late_value()
    for _ in range(2):  # the first opens the channel; the second's slot comes with a spare of its size
        ray.put(value)
    send, held = channel._send, []

    def late_send(conn, payload) -> None:
        if payload[0] not in (channel._TAKE, channel._SEAL):
            send(conn, payload)
            return
        held.append((conn, payload))
        if payload[0] == channel._SEAL:  # the return value's put is done; the owner is told next
            channel._send = send
            if delay is not None:
                threading.Timer(delay, lambda: [send(*message) for message in held]).start()

    channel._send = late_send
    return value

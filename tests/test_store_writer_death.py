"""A process killed while it writes an object into its node's store, after taking the slot
and before sealing it: the store frees the slot as the process's allocation channel closes.
Before, the half-written object stayed BEING_WRITTEN, its bytes held, for the node's life."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
from conftest import eventually, wait_for_file

import babyray as ray

MB = 1 << 20
TIMEOUT = 30


@ray.remote(max_retries=0)
def put_but_die_writing(size: int, marker: str) -> None:
    """A put whose copy into the arena never ends: it has its slot, and the test kills it."""
    from babyray.api import object_io

    def stuck(*args, **kwargs):
        with open(marker, "w") as out:
            out.write(str(os.getpid()))
        time.sleep(300)

    object_io.write_object = stuck
    ray.put(np.ones(size, dtype=np.uint8))


def _being_written() -> dict:
    objects = ray.memory_stats(objects=True)[0]["objects"]
    return {oid: facts for oid, facts in objects.items() if facts["state"] == "BEING_WRITTEN"}


def test_a_writer_killed_mid_put_leaves_no_half_written_object(cluster, tmp_path):
    used_before = ray.memory_stats()[0]["used_bytes"]
    marker = str(tmp_path / "writing")
    put_but_die_writing.remote(64 * MB, marker)
    wait_for_file(marker, TIMEOUT)
    writing = _being_written()
    assert len(writing) == 1 and next(iter(writing.values()))["size"] >= 64 * MB
    os.kill(int(open(marker).read()), signal.SIGKILL)
    assert eventually(lambda: not _being_written()), "the dead writer's object is still BEING_WRITTEN"
    assert eventually(lambda: ray.memory_stats()[0]["used_bytes"] == used_before)
    # The store goes on: a put of the same size fits and reads back.
    assert ray.get(ray.put(np.full(64 * MB, 7, dtype=np.uint8)), timeout=TIMEOUT)[-1] == 7

# https://docs.ray.io/en/latest/ray-core/fault_tolerance/tasks.html#retrying-failed-tasks
# A task whose worker process dies is retried max_retries times.
import os
import time

import numpy as np

import babyray as ray

ray.init(ignore_reinit_error=True)


@ray.remote(max_retries=1)
def potentially_fail(failure_probability):
    time.sleep(0.2)
    if np.random.random() < failure_probability:
        os._exit(0)
    return 0


for _ in range(3):
    try:
        # One retry after a crash; ray.get raises only if both attempts crash.
        ray.get(potentially_fail.remote(0.5))
        print("SUCCESS")
    except ray.exceptions.WorkerCrashedError:
        print("FAILURE")

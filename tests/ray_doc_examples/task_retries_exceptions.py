# https://docs.ray.io/en/latest/ray-core/fault_tolerance/tasks.html#retrying-failed-tasks
# Expected (from the page): three SUCCESS/FAILURE lines, "FAILED AS EXPECTED", three SUCCESS/FAILURE AFTER RETRIES lines.
# retry_exceptions=True retries on any application exception; a list retries only on those types.
import time

import numpy as np

import babyray as ray

ray.init(ignore_reinit_error=True)


class RandomError(Exception):
    pass


@ray.remote(max_retries=1, retry_exceptions=True)
def potentially_fail(failure_probability):
    if failure_probability < 0 or failure_probability > 1:
        raise ValueError(f"failure_probability must be between 0 and 1, but got: {failure_probability}")
    time.sleep(0.2)
    if np.random.random() < failure_probability:
        raise RandomError("Failed!")
    return 0


for _ in range(3):
    try:
        ray.get(potentially_fail.remote(0.5))
        print("SUCCESS")
    except RandomError:
        print("FAILURE")

retry_on_exception = potentially_fail.options(retry_exceptions=[RandomError])
try:
    # ValueError is not in the allowlist: no retry, the error comes back.
    ray.get(retry_on_exception.remote(-1))
except ValueError:
    print("FAILED AS EXPECTED")
else:
    raise RuntimeError("An exception should be raised so this shouldn't be reached.")

for _ in range(3):
    try:
        ray.get(retry_on_exception.remote(0.5))
        print("SUCCESS")
    except RandomError:
        print("FAILURE AFTER RETRIES")

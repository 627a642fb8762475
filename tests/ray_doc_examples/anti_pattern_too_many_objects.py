# https://docs.ray.io/en/latest/ray-core/patterns/ray-get-too-many-objects.html
import numpy as np

import babyray as ray

ray.init()


def process_results(results):
    # custom process logic
    pass


@ray.remote
def return_big_object():
    return np.zeros(1024 * 10)


NUM_TASKS = 1000

object_refs = [return_big_object.remote() for _ in range(NUM_TASKS)]
# Getting everything at once crashes out of memory or disk if NUM_TASKS is large enough.
results = ray.get(object_refs)
process_results(results)

BATCH_SIZE = 100

while object_refs:
    # Process results in the finish order instead of the submission order.
    ready_object_refs, object_refs = ray.wait(object_refs, num_returns=BATCH_SIZE)
    # Only one batch needs to fit at a time.
    results = ray.get(ready_object_refs)
    process_results(results)

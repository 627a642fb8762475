# https://docs.ray.io/en/latest/ray-core/actors/task-orders.html
# Expected (from the page): 1, 3 (one submitter, a sync actor: in submission order); 3, 2 (two
# submitters, the first waiting for its argument); 3, 2 (an async actor: no order promised).
import time

import babyray as ray


@ray.remote
class Counter:
    def __init__(self):
        self.value = 0

    def add(self, addition):
        self.value += addition
        return self.value


counter = Counter.remote()

# For tasks from the same submitter,
# they are executed according to submission order.
value0 = counter.add.remote(1)
value1 = counter.add.remote(2)

# Output: 1. The first submitted task is executed first.
print(ray.get(value0))
# Output: 3. The later submitted task is executed later.
print(ray.get(value1))


@ray.remote
class Counter:  # noqa: F811 (the page defines it again)
    def __init__(self):
        self.value = 0

    def add(self, addition):
        self.value += addition
        return self.value


counter = Counter.remote()


# Submit task from a worker
@ray.remote
def submitter(value):
    return ray.get(counter.add.remote(value))


# Simulate delayed result resolution.
@ray.remote
def delayed_resolution(value):
    time.sleep(5)
    return value


# Submit tasks from different workers, with
# the first submitted task waiting for
# dependency resolution.
value0 = submitter.remote(delayed_resolution.remote(1))
value1 = submitter.remote(2)

# Output: 3. The first submitted task is executed later.
print(ray.get(value0))
# Output: 2. The later submitted task is executed first.
print(ray.get(value1))


@ray.remote
class AsyncCounter:
    def __init__(self):
        self.value = 0

    async def add(self, addition):
        self.value += addition
        return self.value


counter = AsyncCounter.remote()

# Submit tasks from the driver, with
# the first submitted task waiting for
# dependency resolution.
value0 = counter.add.remote(delayed_resolution.remote(1))
value1 = counter.add.remote(2)

# Output: 3. The first submitted task is executed later.
print(ray.get(value0))
# Output: 2. The later submitted task is executed first.
print(ray.get(value1))

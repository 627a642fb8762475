# https://docs.ray.io/en/latest/ray-core/ray-generator.html
# Streaming generators: next() on the generator, an exception mid-stream, actor generator methods.
import time

import babyray as ray


@ray.remote
def task():
    for i in range(5):
        time.sleep(5)
        yield i


gen = task.remote()
# Blocks for 5 seconds.
ref = next(gen)
assert ray.get(ref) == 0
# Blocks for 5 seconds.
ref = next(gen)
assert ray.get(ref) == 1

# Returns 2~4 every 5 seconds.
for ref in gen:
    print(ray.get(ref))


@ray.remote
def failing_task():
    for i in range(5):
        time.sleep(1)
        if i == 1:
            raise ValueError
        yield i


gen = failing_task.remote()
# it's okay.
ray.get(next(gen))

# Raises an exception
try:
    ray.get(next(gen))
except ValueError as e:
    print(f"Exception is raised when i == 1 as expected {e}")


@ray.remote
class Actor:
    def f(self):
        for i in range(5):
            yield i


@ray.remote(max_concurrency=5)
class ThreadedActor:
    def f(self):
        for i in range(5):
            yield i


actor = Actor.remote()
for ref in actor.f.remote():
    print(ray.get(ref))

actor = ThreadedActor.remote()
for ref in actor.f.remote():
    print(ray.get(ref))

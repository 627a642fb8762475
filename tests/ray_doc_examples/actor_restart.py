# https://docs.ray.io/en/latest/ray-core/fault_tolerance/actors.html#actor-process-failure
import os

import babyray as ray

ray.init()


# This actor kills itself after executing 10 tasks.
@ray.remote(max_restarts=4, max_task_retries=-1)
class Actor:
    def __init__(self):
        self.counter = 0

    def increment_and_possibly_fail(self):
        if self.counter == 10:
            os._exit(0)
        self.counter += 1
        return self.counter


actor = Actor.remote()

# Restarted up to 4 times (constructor rerun): 50 calls succeed, the one in flight at each death is retried.
for _ in range(50):
    counter = ray.get(actor.increment_and_possibly_fail.remote())
    print(counter)  # Prints the sequence 1-10 5 times.

# After the 4th restart is used up, every call raises RayActorError.
for _ in range(10):
    try:
        counter = ray.get(actor.increment_and_possibly_fail.remote())
        print(counter)  # Unreachable.
    except ray.exceptions.RayActorError:
        print("FAILURE")  # Prints 10 times.

# https://docs.ray.io/en/latest/ray-core/actors/actor-utils.html#message-passing-using-ray-queue
import babyray as ray
from babyray.util.queue import Queue

ray.init()
# The queue can be passed around to different tasks and actors.
queue = Queue(maxsize=100)


@ray.remote
def consumer(queue):
    next_item = queue.get(block=True)
    print(f"got work {next_item}")


consumers = [consumer.remote(queue) for _ in range(2)]

[queue.put(i) for i in range(10)]

"""Queue: producers and consumers (tasks and an actor) share one actor-backed queue.

python examples/queue_pipeline.py
"""

import babyray as ray
from babyray.util.queue import Empty, Queue


@ray.remote
def producer(queue, start, count):
    for i in range(start, start + count):
        queue.put(i)  # blocks while the queue is full
    return count


@ray.remote
class Summer:
    def drain(self, queue):
        total, items = 0, 0
        try:
            while True:
                total += queue.get(timeout=2)
                items += 1
        except Empty:  # nothing came for 2 s: the producers are done
            return items, total


if __name__ == "__main__":
    ray.init(num_cpus=2)
    queue = Queue(maxsize=5)
    produced = [producer.remote(queue, 0, 10), producer.remote(queue, 100, 10)]
    items, total = ray.get(Summer.remote().drain.remote(queue))
    print("produced:", sum(ray.get(produced)))
    print("consumed:", items, "sum:", total)
    queue.put_nowait_batch(["a", "b", "c"])
    print("batch:", queue.get_nowait_batch(3), "left:", queue.qsize())
    queue.shutdown()
    ray.shutdown()

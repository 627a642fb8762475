# https://docs.ray.io/en/latest/ray-core/api/doc/ray.util.queue.Queue.html
# The Queue class docstring's example: FIFO put/get, Empty on timeout, actor_options.
import babyray as ray
from babyray.util.queue import Empty, Queue

ray.init()
q = Queue()

items = list(range(10))
for item in items:
    q.put(item)

for item in items:
    assert item == q.get()

try:
    q.get(timeout=1)
except Empty:
    print("queue empty")

# Create Queue with the underlying actor reserving 1 CPU.
q = Queue(actor_options={"num_cpus": 1})
q.put("x")
assert q.get() == "x"

# https://docs.ray.io/en/latest/ray-core/patterns/redefine-task-actor-loop.html
import babyray as ray

ray.init()

outputs = []
for i in range(10):

    @ray.remote
    def double(i):
        return i * 2

    outputs.append(double.remote(i))
outputs = ray.get(outputs)
# The double remote function is pickled and uploaded 10 times.

assert outputs == [i * 2 for i in range(10)]


@ray.remote
def double_once(i):
    return i * 2


outputs = []
for i in range(10):
    outputs.append(double_once.remote(i))
outputs = ray.get(outputs)
# The double remote function is pickled and uploaded 1 time.

assert outputs == [i * 2 for i in range(10)]

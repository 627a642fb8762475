# https://docs.ray.io/en/latest/ray-core/patterns/ray-get-loop.html
import babyray as ray

ray.init()


@ray.remote
def f(i):
    return i


# Anti-pattern: no parallelism, ray.get is called inside the loop.
sequential_returns = []
for i in range(100):
    sequential_returns.append(ray.get(f.remote(i)))

# Better: submit all tasks first, then get them together.
refs = []
for i in range(100):
    refs.append(f.remote(i))

parallel_returns = ray.get(refs)

assert sequential_returns == parallel_returns

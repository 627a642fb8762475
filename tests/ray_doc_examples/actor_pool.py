# https://docs.ray.io/en/latest/ray-core/actors/actor-utils.html#actor-pool
import babyray as ray
from babyray.util import ActorPool


@ray.remote
class Actor:
    def double(self, n):
        return n * 2


a1, a2 = Actor.remote(), Actor.remote()
pool = ActorPool([a1, a2])

# pool.map(..) returns a Python generator object.
gen = pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4])
print([v for v in gen])
# [2, 4, 6, 8]

# https://docs.ray.io/en/latest/ray-core/patterns/unnecessary-ray-get.html
# Expected (from the page): exit 0 (both asserts pass).
# A 10000 x 10000 array of ones (800 MB), fetched and re-uploaded, then passed by reference.
import numpy as np

import babyray as ray

ray.init()


@ray.remote
def generate_rollout():
    return np.ones((10000, 10000))


@ray.remote
def reduce(rollout):
    return np.sum(rollout)


# `ray.get()` downloads the result here...
rollout = ray.get(generate_rollout.remote())
# ...and it has to be uploaded again.
reduced = ray.get(reduce.remote(rollout))

assert reduced == 100000000

# Better: no ray.get, the rollout is passed by reference.
rollout_obj_ref = generate_rollout.remote()
reduced = ray.get(reduce.remote(rollout_obj_ref))

assert reduced == 100000000

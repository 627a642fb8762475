# https://docs.ray.io/en/latest/ray-core/patterns/pass-large-arg-by-value.html
import numpy as np

import babyray as ray

ray.init()


@ray.remote
def func(large_arg, i):
    return len(large_arg) + i


large_arg = np.zeros(1024 * 1024)

# 10 copies of large_arg are stored in the object store.
outputs = ray.get([func.remote(large_arg, i) for i in range(10)])
assert outputs == [1024 * 1024 + i for i in range(10)]

# 1 copy of large_arg is stored in the object store.
large_arg_ref = ray.put(large_arg)
outputs = ray.get([func.remote(large_arg_ref, i) for i in range(10)])
assert outputs == [1024 * 1024 + i for i in range(10)]

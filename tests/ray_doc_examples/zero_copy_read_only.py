# https://docs.ray.io/en/latest/ray-core/objects/serialization.html#fixing-assignment-destination-is-read-only
# A numpy argument is a zero-copy read-only view: writing to it fails the task, and ray.get raises.
import numpy as np

import babyray as ray


@ray.remote
def f(arr):
    # arr = arr.copy()  # Adding a copy will fix the error.
    arr[0] = 1


ray.get(f.remote(np.zeros(100)))
# ray.exceptions.RayTaskError(ValueError): ray::f()
#   ...
# ValueError: assignment destination is read-only

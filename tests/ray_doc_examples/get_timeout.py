# https://docs.ray.io/en/latest/ray-core/objects.html
# Fetching object data: ray.get of one ref, of a list, and with a timeout (GetTimeoutError).
import time

import babyray as ray
from babyray.exceptions import GetTimeoutError

obj_ref = ray.put(1)
assert ray.get(obj_ref) == 1

assert ray.get([ray.put(i) for i in range(3)]) == [0, 1, 2]


@ray.remote
def long_running_function():
    time.sleep(8)


obj_ref = long_running_function.remote()
try:
    ray.get(obj_ref, timeout=4)
except GetTimeoutError:  # a subclass of the standard TimeoutError
    print("`get` timed out.")
assert issubclass(GetTimeoutError, TimeoutError)

# Objects can be nested within each other.
object_ref_2 = ray.put([obj_ref])
assert ray.get(object_ref_2) == [obj_ref]
